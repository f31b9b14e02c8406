"""The GIL-free driver calls of the data path (trtapps.gpu.driver) and the pinned small-array upload
(trtapps.gpu.memory.to_device), against CuPy's own calls on the GPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gpu_spin import busy  # tests/gpu_spin.py

pytestmark = pytest.mark.gpu


def test_record_and_wait_order_two_streams_like_cupy() -> None:
    import cupy

    from trtapps.gpu.driver import record_event, wait_event

    producer = cupy.cuda.Stream(non_blocking=True)
    consumer = cupy.cuda.Stream(non_blocking=True)
    event = cupy.cuda.Event(block=False, disable_timing=True)
    with producer:
        marker = cupy.zeros((1,), cupy.float32)
        marker.fill(1.0)  # compile the kernels used below before the timed part
        _ = marker * 2
    producer.synchronize()
    busy(cupy, producer)
    with producer:
        marker.fill(7.0)
    record_event(event, producer)
    assert not event.done  # the spin takes 200 ms
    wait_event(consumer, event.ptr)  # raw handles work too
    with consumer:
        copy = marker * 2
    consumer.synchronize()
    assert event.done
    assert float(copy.get()[0]) == 14.0


def test_a_thread_whose_first_cuda_call_is_a_driver_call_gets_the_context_bound() -> None:
    import cupy

    from trtapps.gpu.driver import record_event, wait_event

    stream = cupy.cuda.Stream(non_blocking=True)
    event = cupy.cuda.Event(block=False, disable_timing=True)
    errors: list[BaseException] = []

    def fresh() -> None:
        try:
            record_event(event, stream)
            wait_event(stream, event)
            event.synchronize()
            assert event.done
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=fresh)
    thread.start()
    thread.join(30)
    assert not errors, errors


def test_copy_to_device_from_pinned_memory_is_exact_and_ordered_on_its_stream() -> None:
    import cupy

    from trtapps.gpu.driver import copy_to_device, record_event
    from trtapps.gpu.memory import PinnedBuffer

    rng = np.random.default_rng(3)
    stream = cupy.cuda.Stream(non_blocking=True)
    for nbytes in (1, 3, 4097, 2_764_800 + 13):
        data = rng.integers(0, 256, nbytes, dtype=np.uint8)
        with PinnedBuffer(nbytes) as pinned:
            pinned.bytes[...] = data
            with stream:
                target = cupy.full(nbytes + 8, 0xAB, dtype=cupy.uint8)  # poisoned, with a guard tail
            copy_to_device(int(target.data.ptr), pinned.ptr, nbytes, stream)
            done = cupy.cuda.Event()
            record_event(done, stream)
            done.synchronize()
            host = target.get(stream=stream)
        assert np.array_equal(host[:nbytes], data)
        assert (host[nbytes:] == 0xAB).all()


def test_failures_name_the_driver_call_and_error() -> None:
    from trtapps.gpu.driver import _fail

    message = str(_fail("cuEventRecord", 400))
    assert "cuEventRecord failed" in message
    assert "CUDA_ERROR_INVALID_HANDLE" in message


def test_to_device_keeps_every_upload_intact_across_ring_reuse() -> None:
    import cupy

    from trtapps.gpu.memory import SMALL_UPLOAD_BYTES, SMALL_UPLOAD_SLOTS, to_device

    rng = np.random.default_rng(11)
    stream = cupy.cuda.Stream(non_blocking=True)
    busy(cupy, stream)  # the uploads queue behind 200 ms of work: nothing may be read early
    arrays: list[np.ndarray] = []
    for i in range(4 * SMALL_UPLOAD_SLOTS + 3):  # the ring wraps several times before anything is read
        dtype = (np.int64, np.float32, np.uint8, np.float64)[i % 4]
        shape = [(32, 14), (7, 6), (1,), (3, 5, 2)][i % 4]
        arrays.append((rng.standard_normal(shape) * 1000).astype(dtype))
    arrays.append(np.arange(SMALL_UPLOAD_BYTES // 8 + 5, dtype=np.int64))  # larger than a slot: CuPy's copy
    arrays.append(np.zeros((0, 6), np.float32))
    arrays.append(np.float32(2.5))  # 0-d
    uploaded = [to_device(a, stream) for a in arrays]
    stream.synchronize()
    for a, d in zip(arrays, uploaded, strict=True):
        assert isinstance(d, cupy.ndarray)
        assert d.shape == np.shape(a)
        assert d.dtype == np.asarray(a).dtype
        assert np.array_equal(d.get(), a)


def test_to_device_converts_and_passes_device_arrays_through() -> None:
    import cupy

    from trtapps.gpu.memory import to_device

    stream = cupy.cuda.Stream(non_blocking=True)
    host = np.arange(12, dtype=np.float64).reshape(3, 4)
    as_f32 = to_device(host, stream, dtype=np.float32)
    assert as_f32.dtype == np.float32
    on_device = cupy.asarray(host)
    same = to_device(on_device, stream)
    assert same.data.ptr == on_device.data.ptr  # already contiguous: no copy
    strided = to_device(on_device[:, ::2], stream, dtype=np.float32)
    assert strided.flags.c_contiguous
    stream.synchronize()
    assert np.array_equal(as_f32.get(), host.astype(np.float32))
    assert np.array_equal(strided.get(), host[:, ::2].astype(np.float32))
