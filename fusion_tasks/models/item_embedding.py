"""Item embeddings: the items closest, in embedding space, to what the user did.

``score(u, i) = cos(p_u, e_i) + prior · pop_i``: ``e_i`` is item i's unit embedding (``item_embedding``
modality), ``p_u`` the user's time-decayed sum of the embeddings of the items they interacted with, so
``cos(p_u, e_i)`` is the (normalised) weighted sum of the similarities between i and each of the user's items:
nearest neighbours of the user's history, recent items counting more. ``pop`` is the decayed popularity in
[0, 1]; it orders the items without an embedding and is all a user without history gets. A run whose data has
no item embeddings gets a model that scores nothing (no signal), so the fusion gives it no weight.
Every knob is tuned per run (``search_space``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData


class ItemEmbeddingRecommender(BaseRecommender):
    name = "item_embedding"
    modalities = ("behavior", "item_embedding")
    group = "item_embedding"
    search_space: ClassVar[dict[str, tuple]] = {
        "half_life_days": (30.0, 0.0, 7.0, 180.0),
        "prior": (0.05, 0.0, 0.5, 2.0),
    }

    def __init__(self, half_life_days: float = 30.0, prior: float = 0.05) -> None:
        self.half_life_days = half_life_days
        self.prior = prior

    def fit(self, data: TrainingData) -> ItemEmbeddingRecommender:
        features = data.features["item_embedding"]
        vectors = np.asarray(features.vectors, dtype="float32")
        history = decayed_interactions(data, self.half_life_days)
        profiles = dense_rows(history @ vectors)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        self.profiles_ = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
        self.vectors_ = vectors
        votes = history.copy()
        votes.data = np.minimum(votes.data, 1.0)
        popularity = np.asarray(votes.sum(axis=0)).ravel()
        if not features.has_embedding.any():
            popularity[:] = 0.0
        self.popularity_ = (popularity / max(popularity.max(), 1e-12)).astype("float32")
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = self.profiles_[users] @ self.vectors_.T
        if self.prior:
            out = out + self.prior * self.popularity_[None, :]
        return np.ascontiguousarray(out, dtype="float32")

    def low_rank(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.prior:
            return self.profiles_[users], self.vectors_
        prior = np.full((len(users), 1), self.prior, dtype="float32")
        return (np.hstack([self.profiles_[users], prior]), np.hstack([self.vectors_, self.popularity_[:, None]]))
