"""The sort-based set operations agree with numpy's on ints, with repeats, negatives and empty arrays."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_tasks import arrays


@pytest.mark.parametrize("size", [0, 1, 7, 5000])
def test_unique_and_contains_agree_with_numpy(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.integers(-50, 50, size)
    others = rng.integers(-80, 80, 300)
    got = arrays.unique(values)
    np.testing.assert_array_equal(got, np.unique(values))
    np.testing.assert_array_equal(arrays.contains(got, others), np.isin(others, values))
    assert arrays.contains(got, others).dtype == bool
