"""Behavioural collaborative filtering, neighbourhood style: item-item cosine similarity."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData


class ItemKNNRecommender(BaseRecommender):
    """``score(u) = x̃_u S``: ``S`` is the cosine similarity of items over who interacted with them
    (binary, shrunk by ``shrink``), pruned to each item's ``neighbours`` most similar items; ``x̃_u``
    is the user's history decayed by age, so recent interests weigh more."""

    name = "item_knn"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {
        "half_life_days": (180.0, 0.0, 30.0),
        "neighbours": (100, 25, 400),
        "shrink": (10.0, 100.0),
    }

    def __init__(self, neighbours: int = 100, shrink: float = 10.0, half_life_days: float = 180.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.half_life_days = half_life_days

    def fit(self, data: TrainingData) -> ItemKNNRecommender:
        gram, norms = _cooccurrence(data)
        rows = np.repeat(np.arange(gram.shape[0], dtype=np.int32), np.diff(gram.indptr))
        scale = norms[rows]
        scale *= norms[gram.indices]
        scale += self.shrink
        cosine = sparse.csr_matrix((gram.data / scale, gram.indices, gram.indptr), shape=gram.shape)
        cosine.data[rows == gram.indices] = 0.0  # the diagonal: every other co-occurrence count is at least 1
        cosine.eliminate_zeros()
        self.similarity_ = _top_per_row(cosine, self.neighbours)
        self.history_ = decayed_interactions(data, self.half_life_days)
        return self

    def fit_from(self, data: TrainingData, previous: ItemKNNRecommender) -> ItemKNNRecommender:
        """The same fit as ``fit``, from ``previous`` when its ``shrink`` is this model's: its similarity is taken when
        ``neighbours`` are the same too (a half-life changes only the users' histories), and pruned to this
        model's neighbours when it kept more (the k largest of a row's m >= k largest are its k largest, with the
        same ties, as the cosines are float32 in both)."""
        if not (isinstance(previous, ItemKNNRecommender) and previous.shrink == self.shrink
                and previous.neighbours >= self.neighbours):
            return self.fit(data)
        self.similarity_ = (previous.similarity_ if previous.neighbours == self.neighbours  # shared, never changed
                            else _top_per_row(previous.similarity_, self.neighbours))
        self.history_ = decayed_interactions(data, self.half_life_days)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return dense_rows(self.history_[users] @ self.similarity_)


def _cooccurrence(data: TrainingData) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Items x items counts of users who did both (the diagonal: users per item), and the square root of the
    users per item."""
    binary = data.interactions.copy()
    binary.data[:] = 1.0
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    return binary.T.tocsr() @ binary, norms  # CSR @ CSR: about half the time of CSC @ CSR


def _top_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the k largest entries of each row (ties: lower column first); columns sorted within a row.

    A longer row is cut at its k-th largest value (a partition, not a sort): the entries above it are kept,
    and the entries equal to it with the lowest columns fill the row to k."""
    lengths = np.diff(matrix.indptr)
    keep = np.ones(matrix.nnz, dtype=bool)
    data, indices, indptr = matrix.data, matrix.indices, matrix.indptr
    for row in np.flatnonzero(lengths > k):  # shorter rows are kept whole
        start, end = indptr[row], indptr[row + 1]
        values = data[start:end]
        kth = np.partition(values, end - start - k)[end - start - k]
        chosen = values > kth
        tied = np.flatnonzero(values == kth)
        need = k - np.count_nonzero(chosen)
        if need < len(tied):
            tied = tied[np.argsort(indices[start:end][tied], kind="stable")[:need]]
        chosen[tied] = True
        keep[start:end] = chosen
    out = sparse.csr_matrix((data[keep], indices[keep], np.r_[0, np.cumsum(np.minimum(lengths, k))]),
                            shape=matrix.shape, dtype="float32")
    out.sort_indices()
    return out
