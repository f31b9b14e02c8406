"""trtapps.heap: the glibc mmap threshold that keeps long runs from fragmenting the heap."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from conftest import REPO
from trtapps.errors import ConfigError
from trtapps.heap import DEFAULT_THRESHOLD, THRESHOLD_ENV, mmap_threshold


def test_threshold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THRESHOLD_ENV, raising=False)
    assert mmap_threshold() == DEFAULT_THRESHOLD == 131072
    monkeypatch.setenv(THRESHOLD_ENV, "262144")
    assert mmap_threshold() == 262144
    assert mmap_threshold("0") == 0


@pytest.mark.parametrize("value", ["big", "-1", "1.5"])
def test_a_bad_threshold_is_a_one_line_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=f"{THRESHOLD_ENV}=.*number of bytes"):
        mmap_threshold(value)


def _run(code: str, **env: str) -> str:
    """*code* in a fresh interpreter (the setting is per process, applied once)."""
    import os

    environ = {k: v for k, v in os.environ.items() if k not in (THRESHOLD_ENV, "MALLOC_MMAP_THRESHOLD_")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=REPO,
                          check=True)
    return done.stdout.strip()


CHECK = """
import numpy as np, resource
from trtapps.heap import limit_heap_retention
print(limit_heap_retention(), limit_heap_retention())
# a freed 4 MB block: with the fixed threshold it is unmapped at once (no growth of the heap left behind)
import ctypes
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
for _ in range(3):
    a = np.ones(4_000_000, np.uint8); del a
print(libc.mallinfo2().fordblks < 2_000_000)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only: elsewhere the setting is not made")
def test_the_threshold_is_applied_once_and_freed_frames_leave_no_kept_memory() -> None:
    first, second = _run(CHECK).splitlines()
    assert first == "131072 131072"
    assert second == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_zero_or_glibcs_own_variable_leave_malloc_alone() -> None:
    code = "from trtapps.heap import limit_heap_retention; print(limit_heap_retention())"
    assert _run(code, **{THRESHOLD_ENV: "0"}) == "None"
    assert _run(code, MALLOC_MMAP_THRESHOLD_="65536") == "None"
