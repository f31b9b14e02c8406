"""PinnedStorage: the pinned result buffers of batches in flight (the pipeline reads batch k while k + 1 is queued).

CuPy is not installed where these run: ``cupyx.empty_pinned`` is stood in by a NumPy allocation that counts.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from trtapps.ops.cuda.buffers import PinnedStorage


@pytest.fixture
def allocations(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    made: list[np.ndarray] = []

    def empty_pinned(shape: tuple[int, ...], dtype: object) -> np.ndarray:
        array = np.full(shape, np.nan, dtype=dtype)
        made.append(array)
        return array

    module = types.ModuleType("cupyx")
    module.empty_pinned = empty_pinned  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupyx", module)
    return made


def test_batches_in_flight_get_different_buffers(allocations: list[np.ndarray]) -> None:
    storage = PinnedStorage()
    first, second = storage.take(100), storage.take(100)
    assert first.shape == second.shape == (100,)
    assert first.dtype == np.float32
    assert not np.shares_memory(first, second)
    assert len(allocations) == 2


def test_a_given_back_buffer_is_reused_whole(allocations: list[np.ndarray]) -> None:
    storage = PinnedStorage()
    big = storage.take(100)
    storage.give_back(big)
    small = storage.take(40)  # a view of the same allocation
    assert small.shape == (40,)
    assert np.shares_memory(small, allocations[0])
    storage.give_back(small)  # returns the whole 100-element allocation, once
    storage.give_back(small)
    again = storage.take(100)
    assert np.shares_memory(again, allocations[0])
    assert storage.take(100) is not again
    assert len(allocations) == 2


def test_too_small_buffers_are_not_handed_out_and_the_pool_is_bounded(allocations: list[np.ndarray]) -> None:
    storage = PinnedStorage(keep=2)
    buffers = [storage.take(n) for n in (10, 20, 30)]
    for buffer in buffers:
        storage.give_back(buffer)
    assert len(allocations) == 3
    assert np.shares_memory(storage.take(25), allocations[2])  # the 10 was dropped (keep=2 keeps the largest)
    assert np.shares_memory(storage.take(15), allocations[1])
    storage.take(5)
    assert len(allocations) == 4
