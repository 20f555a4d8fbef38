"""The top-n of every row by chunk maxima equals a full sort of the row (score desc, column asc), with ties,
-inf and sparse rows, for every chunk size, whether the cells at the threshold are found by comparing the
block or gathered from the chunks that reach it."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_tasks import topn
from fusion_tasks.topn import top_n


@pytest.fixture(params=["compare", "gather"])
def selection(request, monkeypatch) -> str:
    """Every test runs once with each way of picking the cells at or above a row's threshold."""
    monkeypatch.setattr(topn, "GATHER_SHARE", 0.0 if request.param == "compare" else 1.0)
    return request.param


def by_sorting(scores: np.ndarray, n: int) -> np.ndarray:
    return np.array([sorted(range(len(row)), key=lambda c, row=row: (-row[c], c))[:n] for row in scores])


def world(kind: str, rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    if kind == "distinct":
        return rng.standard_normal((rows, columns)).astype("float32")
    if kind == "few values":  # ties everywhere, also at the n-th place
        return rng.integers(0, 3, (rows, columns)).astype("float32")
    if kind == "sparse":  # fewer non-zero scores than n in some rows: zeros fill by column
        return np.where(rng.random((rows, columns)) < 0.01, rng.random((rows, columns)), 0).astype("float32")
    if kind == "signed zeros":  # -0.0 equals 0.0 (ties by column), and extremes of float32 keep their order
        values = np.array([-0.0, 0.0, -1e-38, 1e-38, -3e38, 3e38, 1.0, -1.0, -np.inf], dtype="float32")
        return values[rng.integers(0, len(values), (rows, columns))]
    scores = rng.standard_normal((rows, columns)).astype("float32")  # masked: fewer valid items than n
    scores[rng.random((rows, columns)) < 0.9] = -np.inf
    return scores


@pytest.mark.parametrize("kind", ["distinct", "few values", "sparse", "masked", "signed zeros"])
@pytest.mark.parametrize("chunk", [None, 2, 5, 64])
def test_top_n_equals_a_full_sort(kind: str, chunk: int | None, selection: str) -> None:
    rng = np.random.default_rng(len(kind) + (chunk or 0))
    for _ in range(20):
        rows, columns, n = int(rng.integers(1, 12)), int(rng.integers(1, 900)), int(rng.integers(1, 40))
        scores = world(kind, rng, rows, columns)
        np.testing.assert_array_equal(top_n(scores, n, chunk), by_sorting(scores, min(n, columns)))


def test_an_empty_block_has_no_rows() -> None:
    assert top_n(np.zeros((0, 10), dtype="float32"), 3).shape == (0, 3)


def test_rows_of_equal_scores_beside_rows_of_distinct_ones(selection: str) -> None:
    """A block mixing rows read whole (mostly one value) with rows gathered by chunks, as a pool block of a
    sparse model is: each row as a full sort gives it, also when the chunks do not divide the columns."""
    rng = np.random.default_rng(9)
    for columns in (5000, 5003):
        scores = rng.standard_normal((30, columns)).astype("float32")
        scores[::3] = 0.0
        scores[::3, rng.integers(0, columns, 5)] = 1.0  # fewer distinct scores than n: the zeros fill by column
        scores[1::3][rng.random((10, columns)) < 0.5] = -np.inf
        for n in (1, 20, 50):
            np.testing.assert_array_equal(top_n(scores, n), by_sorting(scores, n))


def test_a_strided_view_is_ranked_like_a_copy(selection: str) -> None:
    """Gathering needs the block's rows contiguous: a view of every other column is compared instead."""
    scores = np.random.default_rng(4).standard_normal((12, 4001)).astype("float32")[:, ::2]
    for n in (1, 10):
        np.testing.assert_array_equal(top_n(scores, n), by_sorting(scores, n))
