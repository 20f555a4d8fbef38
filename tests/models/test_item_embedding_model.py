"""The item-embedding model's known answers on tiny hand-made data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.modalities.base import Vocabulary
from fusion_tasks.modalities.behavior import BehaviorFeatures
from fusion_tasks.modalities.item_embedding import ItemEmbeddingFeatures
from fusion_tasks.models.item_embedding import ItemEmbeddingRecommender
from fusion_tasks.training_data import TrainingData

ORIGIN_DAY = 19_800


def tiny(events: list[tuple[int, int]], vectors: np.ndarray, n_users: int) -> TrainingData:
    """events: (user, item) done at the origin; vectors: one row per item (zeros: no embedding)."""
    n_items = len(vectors)
    frame = pd.DataFrame([(u, i, 1.0, ORIGIN_DAY) for u, i in events],
                         columns=["user_idx", "item_idx", "weight", "day"])
    vocab = Vocabulary(users=np.array([f"u{j}" for j in range(n_users)]),
                       items=np.array([f"i{j}" for j in range(n_items)]))
    interactions = sparse.csr_matrix((frame["weight"], (frame["user_idx"], frame["item_idx"])),
                                     shape=(n_users, n_items), dtype="float32")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype("float32")
    features = {"behavior": BehaviorFeatures(events=frame, seen=frame[["user_idx", "item_idx"]]),
                "item_embedding": ItemEmbeddingFeatures(vectors=unit, has_embedding=norms[:, 0] > 0, encoded=False)}
    return TrainingData(origin_name="test", origin=dt.date(1970, 1, 1) + dt.timedelta(days=ORIGIN_DAY), vocab=vocab,
                        events=frame, interactions=interactions, seen=(interactions > 0).tocsr(),
                        item_known=np.ones(n_items, dtype=bool), features=features)


# items 0-2 point one way, items 3-5 the other; item 6 has no embedding
VECTORS = np.array([[1, 0.1], [1, 0], [0.9, 0.2], [0, 1], [0.1, 1], [0.2, 0.9], [0, 0]], dtype="float32")


def test_the_items_nearest_to_the_user_history_rank_first() -> None:
    data = tiny([(0, 0), (1, 3), (2, 6), (2, 1), (3, 4)], VECTORS, n_users=5)
    model = ItemEmbeddingRecommender(half_life_days=0, prior=0.0).fit(data)
    scores = model.score(np.arange(5))
    assert set(np.argsort(-scores[0])[:3]) == {0, 1, 2}  # u0 did item 0: its neighbours 1 and 2 come next
    assert set(np.argsort(-scores[1])[:3]) == {3, 4, 5}
    assert scores[0, 6] == 0.0  # no embedding: no similarity
    np.testing.assert_allclose(scores[0, 0], 1.0, rtol=1e-6)  # cosine of an item with itself
    np.testing.assert_array_equal(scores[4], np.zeros(7))  # no history, no prior: nothing


def test_popularity_orders_what_the_embeddings_cannot_and_no_embeddings_means_no_signal() -> None:
    data = tiny([(0, 6), (1, 6), (2, 6), (3, 0)], VECTORS, n_users=5)
    scores = ItemEmbeddingRecommender(half_life_days=0, prior=0.5).fit(data).score(np.array([4]))
    assert int(scores[0].argmax()) == 6  # a user without history gets the popular item
    blind = tiny([(0, 6), (1, 0)], np.zeros_like(VECTORS), n_users=3)
    assert not ItemEmbeddingRecommender(prior=0.5).fit(blind).score(np.arange(3)).any()
