"""Finished NVDEC decoders are retired, not destroyed mid-run: destroying one holds the GIL for tens of
milliseconds (session 7's GIL profile on the H100), stalling every pipeline thread. Runs without a GPU: the
decoders here are stand-ins that record when they are destroyed."""

from __future__ import annotations

import gc
from collections import deque

import pytest

from trtapps.gpu import nvdec

destroyed: list[str] = []


class Stand:
    def __init__(self, name: str) -> None:
        self.name = name

    def __del__(self) -> None:
        destroyed.append(self.name)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    destroyed.clear()
    monkeypatch.setattr(nvdec, "_retired", deque())
    monkeypatch.setattr(nvdec, "RETIRED_DECODERS_MAX", 2)


def test_retired_decoders_live_until_more_than_the_cap_are_kept() -> None:
    for i in range(3):
        nvdec.retire_decoder(Stand(f"decoder{i}"), Stand(f"demuxer{i}"), None)
    gc.collect()
    assert sorted(destroyed) == ["decoder0", "demuxer0"]  # the oldest, once a third was retired
    assert nvdec.destroy_retired_decoders() == 2
    gc.collect()
    assert sorted(destroyed[2:4]) == ["decoder1", "demuxer1"]  # oldest first
    assert sorted(destroyed[4:]) == ["decoder2", "demuxer2"]
    assert nvdec.destroy_retired_decoders() == 0


def test_closing_a_decode_session_retires_its_decoder() -> None:
    session = object.__new__(nvdec._DecodeSession)  # no GPU: only the state close() touches
    session._packets = iter(())
    session._decoder, session._demuxer, session._primary = Stand("decoder"), Stand("demuxer"), None
    session._pending = deque([(0, None, None)])
    session.close()
    gc.collect()
    assert destroyed == []  # kept alive: the pipeline's threads are not stalled now
    assert session._decoder is None
    assert not session._pending
    assert len(nvdec._retired) == 1
    session.close()  # twice: nothing more to retire
    assert len(nvdec._retired) == 1
    nvdec.destroy_retired_decoders()
    gc.collect()
    assert sorted(destroyed) == ["decoder", "demuxer"]
