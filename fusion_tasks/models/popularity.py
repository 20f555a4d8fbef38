"""Most popular items, with recent interactions counting more."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import BaseRecommender, decayed_interactions
from fusion_tasks.training_data import TrainingData


class PopularityRecommender(BaseRecommender):
    """Scores every user with the same time-decayed item popularity (the baseline to beat)."""

    name = "popularity"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {"half_life_days": (30.0, 0.0, 7.0, 90.0, 365.0)}

    def __init__(self, half_life_days: float = 30.0) -> None:
        self.half_life_days = half_life_days

    def fit(self, data: TrainingData) -> PopularityRecommender:
        counts = decayed_interactions(data, self.half_life_days)
        counts.data = np.minimum(counts.data, 1.0)  # one vote per user and item
        popularity = np.asarray(counts.sum(axis=0)).ravel()
        self.popularity_ = (popularity / max(popularity.max(), 1e-12)).astype("float32")
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), len(self.popularity_))).copy()

    def low_rank(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((len(users), 1), dtype="float32"), self.popularity_.astype("float32")[:, None]
