"""RetinaFace priors against biubug6's PriorBox, rewritten with plain loops in ``face_reference``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from face_reference import ref_priors

from trtapps_plugins.retinaface import prior_boxes


@pytest.mark.parametrize(
    ("height", "width"),
    [(640, 640), (481, 737), (684, 1024), (720, 1280), (96, 128), (33, 17), (1, 1), (1080, 810)],
)
def test_priors_equal_the_loop_reference(height: int, width: int) -> None:
    ours = prior_boxes(height, width)
    ref = ref_priors(height, width)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_prior_count_is_16800_at_640() -> None:
    assert prior_boxes(640, 640).shape == (16800, 4)


def test_prior_count_uses_ceil_for_non_multiples_of_32() -> None:
    height, width = 481, 737
    expected = sum(math.ceil(height / s) * math.ceil(width / s) * 2 for s in (8, 16, 32))
    floor_count = sum((height // s) * (width // s) * 2 for s in (8, 16, 32))
    assert prior_boxes(height, width).shape[0] == expected
    assert expected != floor_count  # the size really exercises the ceil (tensorRT_Pro's floor would differ)


def test_prior_order_is_level_row_column_min_size() -> None:
    priors = prior_boxes(64, 96)  # level 0: 8 rows × 12 columns × 2 sizes
    w, h = 96, 64
    # first two rows: cell (0, 0) with min sizes 16 and 32
    np.testing.assert_allclose(priors[0], [4 / w, 4 / h, 16 / w, 16 / h], rtol=1e-6)
    np.testing.assert_allclose(priors[1], [4 / w, 4 / h, 32 / w, 32 / h], rtol=1e-6)
    # next cell is the next column (j = 1) of row 0
    np.testing.assert_allclose(priors[2], [12 / w, 4 / h, 16 / w, 16 / h], rtol=1e-6)
    # row 1 starts after 12 columns × 2 sizes
    np.testing.assert_allclose(priors[24], [4 / w, 12 / h, 16 / w, 16 / h], rtol=1e-6)
    # level 1 (stride 16, sizes 64/128) starts after 8·12·2 = 192 priors
    np.testing.assert_allclose(priors[192], [8 / w, 8 / h, 64 / w, 64 / h], rtol=1e-6)


def test_priors_are_cached_per_size_and_read_only() -> None:
    first = prior_boxes(320, 480)
    assert prior_boxes(320, 480) is first
    assert prior_boxes(480, 320) is not first
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 1.0
