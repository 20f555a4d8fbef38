"""Item-kNN's neighbourhood pruning against a brute-force reference."""

import numpy as np
from scipy import sparse

from fusion_tasks.models.item_knn import _top_per_row


def _reference(matrix: sparse.csr_matrix, k: int) -> np.ndarray:
    """Dense result of keeping, per row, the k largest entries by (value descending, column ascending)."""
    dense = np.zeros(matrix.shape, dtype="float32")
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        cols, values = matrix.indices[start:end], matrix.data[start:end]
        for j in np.lexsort((cols, -values))[:k]:
            dense[row, cols[j]] = values[j]
    return dense


def test_top_per_row_keeps_the_k_largest_with_ties_broken_by_the_lower_column():
    rng = np.random.default_rng(3)
    for k in (1, 3, 10):
        # few distinct values, so many ties fall at the k-th place
        values = rng.integers(1, 5, size=(40, 60)).astype("float64") * (rng.random((40, 60)) < 0.4)
        matrix = sparse.csr_matrix(values)
        pruned = _top_per_row(matrix, k)
        assert pruned.dtype == np.float32 and pruned.has_sorted_indices
        assert (np.diff(pruned.indptr) == np.minimum(np.diff(matrix.indptr), k)).all()
        np.testing.assert_array_equal(pruned.toarray(), _reference(matrix, k))


def test_top_per_row_does_not_depend_on_the_order_of_columns_within_a_row():
    rng = np.random.default_rng(4)
    matrix = sparse.random(30, 50, density=0.5, format="csr", random_state=5)
    matrix.data = np.round(matrix.data * 4)  # ties
    matrix.eliminate_zeros()
    shuffled = matrix.copy()
    for row in range(30):  # the same rows, columns in another order (as a sparse product may leave them)
        start, end = shuffled.indptr[row], shuffled.indptr[row + 1]
        order = rng.permutation(end - start)
        shuffled.indices[start:end] = shuffled.indices[start:end][order]
        shuffled.data[start:end] = shuffled.data[start:end][order]
    shuffled.has_sorted_indices = False
    np.testing.assert_array_equal(_top_per_row(shuffled, 7).toarray(), _reference(matrix, 7))
