"""Behavioural collaborative filtering, linear auto-encoder: EASE (Steck, 2019).

``B = argmin ||X - XB||² + λ||B||²`` subject to ``diag(B) = 0`` has the closed form
``P = (XᵀX + λI)⁻¹``, ``B = -P / diag(P)`` (column-wise), ``diag(B) = 0``. ``score(u) = x_u B``.

The inverse is dense (float32, from the Cholesky factor), so the model covers the ``max_items`` items with the
most users (at least ``min_users``); on a 2-CPU machine 5,000 items take a few seconds. The other items score below
every covered item of the same user, so they never displace what the model knows about. A user
with no covered item in their history gets a constant row: the model has no signal for them (fusion
then leaves the ranking to the other models).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import BaseRecommender, dense_rows
from fusion_tasks.training_data import TrainingData


class EASERecommender(BaseRecommender):
    name = "ease"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {"l2": (200.0, 50.0, 800.0, 3000.0)}

    def __init__(self, l2: float = 200.0, max_items: int = 5000, min_users: int = 2) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.min_users = min_users

    def fit(self, data: TrainingData) -> EASERecommender:
        binary = data.interactions.tocsr(copy=True)
        binary.data[:] = 1.0
        users_per_item = np.asarray(binary.sum(axis=0)).ravel()
        eligible = (users_per_item >= self.min_users) & data.item_known
        order = np.argsort(-users_per_item, kind="stable")  # most users first, ties by item index
        chosen = np.sort(order[eligible[order]][: self.max_items])
        sub = binary[:, chosen]
        gram = (sub.T @ sub).toarray().astype("float32")
        gram[np.diag_indices_from(gram)] += self.l2
        import scipy.linalg  # noqa: F401  loads SciPy's OpenBLAS, so that the limit below reaches it
        from threadpoolctl import threadpool_limits

        # One BLAS thread: OpenBLAS's threads cost more CPU than they save at this size, and the inverse of a
        # matrix then has the same bits in every process (a thread count changes the order of float sums)
        with threadpool_limits(1, "blas"):
            precision = _spd_inverse(gram) if len(chosen) else gram
        weights = precision / -np.diag(precision) if len(chosen) else precision
        weights[np.diag_indices_from(weights)] = 0.0
        self.items_ = chosen.astype("int64")
        # C order: the sparse x dense product in ``score`` copies a dense operand in any other order
        self.weights_ = np.ascontiguousarray(weights, dtype="float32")
        self.history_ = sub.tocsr().astype("float32")
        self.n_items_ = int(data.n_items)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items_), dtype="float32")
        history = self.history_[users]
        known = np.flatnonzero(np.diff(history.indptr) > 0)  # users with a covered item
        if len(self.items_) and len(known):
            covered = dense_rows(history[known] @ self.weights_)
            out[known] = covered.min(axis=1, keepdims=True) - 1.0
            out[np.ix_(known, self.items_)] = covered
        return out


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite float32 matrix from its Cholesky factor (LAPACK ``potrf``
    then ``potri``, which forms the inverse's lower triangle from the factor, mirrored here): about 1.6x faster
    than two triangular solves against the identity, and exactly symmetric. λ > 0 keeps it well conditioned.
    Raises ``numpy.linalg.LinAlgError`` when the matrix is not positive definite."""
    from scipy import linalg

    potrf, potri = linalg.get_lapack_funcs(("potrf", "potri"), (matrix,))
    factor, info = potrf(matrix, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        inverse, info = potri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the Gram matrix is not positive definite (LAPACK info {info})")
    return _mirror_lower(inverse)


def _mirror_lower(matrix: np.ndarray, block: int = 256) -> np.ndarray:
    """``matrix`` with its strict upper triangle replaced by the transpose of its lower one, in place. Block by
    block along the diagonal: each strip above a diagonal block is one transposed copy of the strip below it, 4x
    faster than ``tril(m) + tril(m, -1).T`` (whose transpose strides across the whole matrix)."""
    n = len(matrix)
    for start in range(0, n, block):
        stop = min(start + block, n)
        diagonal = matrix[start:stop, start:stop]
        diagonal[...] = np.tril(diagonal) + np.tril(diagonal, -1).T
        if stop < n:
            matrix[start:stop, stop:] = matrix[stop:, start:stop].T
    return matrix
