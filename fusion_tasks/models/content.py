"""Content-based: what a user likes in item attributes, and what is popular among such items.

``score(u, i) = P(c_i | u) · P(i | c_i) · (1 + attribute_weight · cos(p_u, x_i))``:

* ``P(c | u)``: the user's decayed share of interactions in category ``c``, smoothed towards the
  catalogue's category shares with ``smoothing`` pseudo-interactions (a user without history gets the
  catalogue's shares, so the model falls back to popularity within categories);
* ``P(i | c)``: item ``i``'s decayed popularity within its category, with half a pseudo-vote per item
  so that a new item with content is ranked by its category before anyone used it;
* ``cos(p_u, x_i)``: the cosine between the user's decayed attribute profile (category, brand, tags,
  price, embedding: ``features["content"].matrix``) and the item's attributes, which reorders items
  within a category by their other attributes.

Items without content have no category and score 0. Every knob is tuned per run (``search_space``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData

PSEUDO_VOTES = 0.5


class ContentRecommender(BaseRecommender):
    name = "content"
    modalities = ("behavior", "content")
    group = "content"
    search_space: ClassVar[dict[str, tuple]] = {
        "half_life_days": (0.0, 30.0, 180.0),
        "popularity_half_life_days": (90.0, 0.0, 14.0, 365.0),
        "smoothing": (5.0, 0.5, 50.0),
        "attribute_weight": (0.0, 1.0),
    }

    def __init__(self, half_life_days: float = 0.0, popularity_half_life_days: float = 90.0,
                 smoothing: float = 5.0, attribute_weight: float = 0.0) -> None:
        self.half_life_days = half_life_days
        self.popularity_half_life_days = popularity_half_life_days
        self.smoothing = smoothing
        self.attribute_weight = attribute_weight

    def fit(self, data: TrainingData) -> ContentRecommender:
        content = data.features["content"]
        category = np.asarray(content.category_idx, dtype="int64")
        n_cat = int(category.max()) + 1 if len(category) else 1
        known = np.flatnonzero(category > 0)
        onehot = sparse.csr_matrix((np.ones(len(known)), (known, category[known])), shape=(data.n_items, n_cat))

        history = decayed_interactions(data, self.half_life_days)
        per_category = dense_rows(history @ onehot).astype("float64")  # users x categories
        catalogue = per_category.sum(axis=0)
        prior = catalogue / catalogue.sum() if catalogue.sum() > 0 else np.zeros(n_cat)
        totals = per_category.sum(axis=1, keepdims=True)
        self.user_category_ = ((per_category + self.smoothing * prior) /
                               np.maximum(totals + self.smoothing, 1e-12)).astype("float32")

        votes = decayed_interactions(data, self.popularity_half_life_days)
        votes.data = np.minimum(votes.data, 1.0)
        popularity = np.asarray(votes.sum(axis=0)).ravel() + PSEUDO_VOTES * data.item_known
        popularity[category == 0] = 0.0
        category_mass = np.bincount(category, weights=popularity, minlength=n_cat)
        self.item_share_ = np.divide(popularity, category_mass[category], out=np.zeros(data.n_items),
                                     where=category_mass[category] > 0).astype("float32")
        self.item_category_ = category

        items = content.matrix.astype("float32")
        profiles = dense_rows(history @ items)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        self.profiles_ = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
        self.item_features_ = sparse.csr_matrix(items)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        # np.take along the items keeps the rows C-contiguous (fancy indexing of the second axis would not)
        out = np.take(self.user_category_[users], self.item_category_, axis=1)
        out *= self.item_share_
        if self.attribute_weight:
            similarity = dense_rows(self.item_features_ @ self.profiles_[users].T)  # items x users
            out *= 1.0 + self.attribute_weight * similarity.T
        return out
