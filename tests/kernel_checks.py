"""The check every GPU kernel test makes of a kernel's output against its NumPy reference (tests/gpu)."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_kernel_output(
    got: np.ndarray, expected: np.ndarray, record_property: Any, *, exact: bool, rtol: float = 1e-6
) -> None:
    """Exact equality, or (``exact=False``) ulp-level: ``|diff| <= rtol · max(1, |expected|)``; no value left unwritten
    (outputs are poisoned with NaN first), with the fraction of equal values and the largest difference recorded."""
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert not np.isnan(got.astype(np.float32)).any(), "some output values were not written"
    equal = float(np.mean(got == expected))
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    record_property("fraction_exactly_equal", equal)
    record_property("max_abs_diff", float(diff.max()))
    print(f"exactly equal: {equal:.6%}, max |diff| {diff.max():.3g}")
    if exact:
        np.testing.assert_array_equal(got, expected)
    else:
        assert np.all(diff <= rtol * np.maximum(1.0, np.abs(expected.astype(np.float64))))
