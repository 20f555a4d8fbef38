"""Content-based: a user's taste profile over item attributes, matched against every item."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData


class ContentRecommender(BaseRecommender):
    """Profile = decayed, weighted sum of the attribute vectors of the items a user interacted with
    (L2-normalised); score = cosine between the profile and each item's attribute vector. Items
    without content score 0; so do users without history."""

    name = "content"
    modalities = ("behavior", "content")
    group = "content"

    def __init__(self, half_life_days: float = 60.0) -> None:
        self.half_life_days = half_life_days

    def fit(self, data: TrainingData) -> ContentRecommender:
        items = data.features["content"]["matrix"].astype("float32")
        profiles = dense_rows(decayed_interactions(data, self.half_life_days) @ items)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        self.profiles_ = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
        self.item_features_ = sparse.csr_matrix(items)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return dense_rows(self.item_features_ @ self.profiles_[users].T).T.copy()
