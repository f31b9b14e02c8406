"""TensorRT data types as NumPy dtypes, and TensorRT dimensions as ints, without importing TensorRT.

TensorRT's ``DataType`` members are matched by name (``FLOAT``, ``HALF``…), which is the same in TensorRT 10 and
11 and lets this mapping be tested on machines without TensorRT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtapps.errors import ModelError

#: TensorRT ``DataType`` member name → NumPy dtype, for the types a runner can hand out as CuPy arrays
TRT_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}

def dtype_name(trt_dtype: Any) -> str:
    """The member name of a TensorRT ``DataType`` (``"FLOAT"``), or ``str()`` of anything else."""
    name = getattr(trt_dtype, "name", None)
    if isinstance(name, str):
        return name
    text = str(trt_dtype)
    return text.rsplit(".", 1)[-1]


def trt_shape(dims: Any) -> tuple[int, ...]:
    """A TensorRT ``Dims`` (anything indexable with a length) as a tuple of ints; ``-1`` marks a dynamic dimension."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def numpy_dtype(trt_dtype: Any, tensor: str = "") -> np.dtype[Any]:
    """The NumPy dtype of a TensorRT ``DataType``.

    Args:
        trt_dtype: a ``tensorrt.DataType`` member (anything with the member's ``name``).
        tensor: the tensor's name, for the error message.

    Raises:
        ModelError: the type has no NumPy equivalent (bfloat16, fp8, int4, fp4…).
    """
    name = dtype_name(trt_dtype)
    try:
        return TRT_TO_NUMPY[name]
    except KeyError:
        which = f"tensor {tensor!r} " if tensor else ""
        raise ModelError(
            f"{which}has TensorRT type {name}, which trtapps cannot exchange as a NumPy/CuPy array "
            f"(supported: {', '.join(TRT_TO_NUMPY)}); keep the model's inputs and outputs in float32/float16"
        ) from None
