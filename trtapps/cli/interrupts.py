"""Ctrl-C on the command line: the first press stops the run, further presses must not break its cleanup.

The first SIGINT raises ``KeyboardInterrupt`` as Python's own handler does: the run stops taking frames, joins
its threads and closes its outputs (JSONL, videos, ``summary.json``). A second press during that cleanup used to
interrupt it too: ``summary.json`` went missing and the process could abort inside ONNX Runtime while a thread was
still in it. Now the second press only says that the outputs are being finished, and a third quits at once.

A press that lands inside a C extension's import (ONNX Runtime's pybind module turns it into an ``ImportError``)
is swallowed there; :meth:`Interrupts.check` raises it again before the run starts.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupts:
    """The SIGINT handler of a command-line run (see the module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self.finished = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.finished:  # the command is over: nothing left to stop
            return
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:
            os.write(2, b"\ninterrupted: finishing the outputs; Ctrl-C again quits at once and may leave them "
                        b"incomplete\n")
            return
        os._exit(130)

    def finish(self) -> None:
        """The command is over (its outputs are closed): later presses are ignored while the process exits."""
        self.finished = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed and swallowed on its way (e.g. during an import)."""
        if self.count:
            raise KeyboardInterrupt


#: the handler in effect during :func:`handling_interrupts` (its ``check`` is a no-op outside it)
current = Interrupts()


@contextmanager
def handling_interrupts(restore: bool = True) -> Iterator[Interrupts]:
    """Install a fresh :class:`Interrupts` as the SIGINT handler (main thread only); at the end *restore* puts
    the old one back, else SIGINT is ignored from then on (the ``trtapps`` process itself, on its way out)."""
    global current
    current = Interrupts()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield current  # not ours to handle: another thread, or a process started with SIGINT ignored (nohup, &)
        return
    previous = signal.signal(signal.SIGINT, current)
    try:
        yield current
    finally:
        current.finish()
        # the process: ignore SIGINT to its end (Python's finalization puts back the default, fatal disposition
        # of any signal with a Python handler, so a late press would kill it with its outputs already complete)
        signal.signal(signal.SIGINT, previous if restore else signal.SIG_IGN)
