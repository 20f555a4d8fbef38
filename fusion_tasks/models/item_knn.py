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
        history = decayed_interactions(data, self.half_life_days)
        binary = history.copy()
        binary.data[:] = 1.0
        norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
        gram = (binary.T @ binary).tocsr().astype("float32")
        gram.setdiag(0)
        gram.eliminate_zeros()
        rows = np.repeat(np.arange(gram.shape[0]), np.diff(gram.indptr))
        gram.data = gram.data / (norms[rows] * norms[gram.indices] + self.shrink)
        self.similarity_ = _top_per_row(gram, self.neighbours)
        self.history_ = history
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return dense_rows(self.history_[users] @ self.similarity_)


def _top_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the k largest entries of each row (ties: lower column first)."""
    data, indices, indptr = [], [], [0]
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values, cols = matrix.data[start:end], matrix.indices[start:end]
        if end - start > k:
            keep = np.lexsort((cols, -values))[:k]
            values, cols = values[keep], cols[keep]
        order = np.argsort(cols, kind="stable")
        data.append(values[order])
        indices.append(cols[order])
        indptr.append(indptr[-1] + len(cols))
    return sparse.csr_matrix((np.concatenate(data) if data else [], np.concatenate(indices) if indices else [],
                              indptr), shape=matrix.shape, dtype="float32")
