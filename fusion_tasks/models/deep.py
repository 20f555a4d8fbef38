"""A TensorFlow two-tower model that learns from behaviour, content and social ties at once.

User tower: the user's own embedding + the mean embedding of the users they follow (social) + a
projection of their category profile (behaviour x content). Item tower: the item's embedding +
its category's embedding + a projection of its attribute vector (content). Trained on observed
(user, item) pairs against sampled unobserved items with a logistic loss. After training, the two
towers are evaluated once for every user and item and kept as plain arrays, so scoring is a
matrix product and needs no TensorFlow; the Keras weights are saved beside them (HDF5, no pickle).

Users or items never seen in training keep a zero id embedding, so a cold item is placed by its
content alone and a cold user by their ties and profile.

Training cost grows with the number of observed pairs, so the model trains on at most
``max_pairs`` of them, the most recently active (on Ciao, all history is ~10x the pairs of the last
year); the side inputs (profiles, ties) still use all the history the run selected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData

MAX_NEIGHBOURS = 20
MAX_CONTENT_DIMS = 64


class DeepFusionRecommender(BaseRecommender):
    name = "deep"
    modalities = ("behavior",)  # content and social are used when the run selected them
    group = "cross"

    def __init__(self, dim: int = 32, epochs: int = 8, negatives: int = 4, batch_size: int = 1024,
                 learning_rate: float = 0.005, l2: float = 1e-5, max_pairs: int = 50_000,
                 random_state: int = 0) -> None:
        self.dim = dim
        self.epochs = epochs
        self.negatives = negatives
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, data: TrainingData) -> DeepFusionRecommender:
        import tensorflow as tf  # heavy: imported only when a deep model is trained

        tf.keras.utils.set_random_seed(self.random_state)
        tf.config.experimental.enable_op_determinism()
        rng = np.random.default_rng(self.random_state)

        inputs = _side_inputs(data)
        positives = decayed_interactions(data, 0).tocoo()
        pos_users, pos_items = positives.row.astype("int32"), positives.col.astype("int32")
        keep = most_recent_pairs(data, pos_users, pos_items, self.max_pairs)
        pos_users, pos_items = pos_users[keep], pos_items[keep]
        known = np.flatnonzero(data.item_known).astype("int32")
        n_neg = len(pos_users) * self.negatives
        users = np.concatenate([pos_users, np.repeat(pos_users, self.negatives)])
        items = np.concatenate([pos_items, known[rng.integers(0, len(known), n_neg)]])
        labels = np.concatenate([np.ones(len(pos_users)), np.zeros(n_neg)]).astype("float32")
        order = rng.permutation(len(users))

        model = _TwoTower(data.n_users, data.n_items, inputs, self.dim, self.l2)
        model.compile(optimizer=tf.keras.optimizers.Adam(self.learning_rate),
                      loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit((users[order], items[order]), labels[order], batch_size=self.batch_size,
                  epochs=self.epochs, shuffle=True, verbose=0)

        trained_users = np.zeros(data.n_users, dtype=bool)
        trained_users[pos_users] = True
        trained_items = np.zeros(data.n_items, dtype=bool)
        trained_items[pos_items] = True
        model.zero_untrained(trained_users, trained_items)
        self.user_vectors_ = model.user_vectors().astype("float32")
        self.item_vectors_ = model.item_vectors().astype("float32")
        self.item_bias_ = np.where(trained_items, model.item_bias(), 0.0).astype("float32")
        self.item_bias_[~data.item_known] = 0.0
        self._keras = model
        return self

    def _save_extra(self, folder: Path) -> None:
        if getattr(self, "_keras", None) is not None:
            self._keras.save_weights(str(folder / "two_tower.weights.h5"))

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors_[users] @ self.item_vectors_.T + self.item_bias_[None, :]


def most_recent_pairs(data: TrainingData, users: np.ndarray, items: np.ndarray, limit: int) -> np.ndarray:
    """Sorted positions of the ``limit`` (user, item) pairs whose last event is the most recent
    (ties by user, then item); every position when there are at most ``limit`` pairs."""
    if len(users) <= limit:
        return np.arange(len(users))
    events = data.events
    event_keys = events["user_idx"].to_numpy("int64") * data.n_items + events["item_idx"].to_numpy("int64")
    order = np.argsort(event_keys, kind="stable")
    unique_keys, starts = np.unique(event_keys[order], return_index=True)
    last_day = np.maximum.reduceat(events["day"].to_numpy("int64")[order], starts)
    keys = users.astype("int64") * data.n_items + items.astype("int64")
    days = last_day[np.searchsorted(unique_keys, keys)]
    return np.sort(np.lexsort((keys, -days))[:limit])


def _side_inputs(data: TrainingData) -> dict[str, np.ndarray]:
    """Per-user and per-item side information as dense arrays the towers gather from."""
    n_users, n_items = data.n_users, data.n_items
    neighbours = np.zeros((n_users, MAX_NEIGHBOURS), dtype="int32")
    mask = np.zeros((n_users, MAX_NEIGHBOURS), dtype="float32")
    if data.has("social"):
        adjacency = data.features["social"]["adjacency"].tocsr()
        for u in range(n_users):
            row = adjacency.indices[adjacency.indptr[u]:adjacency.indptr[u + 1]]
            weights = adjacency.data[adjacency.indptr[u]:adjacency.indptr[u + 1]]
            keep = row[np.argsort(-weights, kind="stable")[:MAX_NEIGHBOURS]]
            neighbours[u, :len(keep)] = keep
            mask[u, :len(keep)] = 1.0
    if data.has("content"):
        content = data.features["content"]
        category = content["category_idx"].astype("int32")
        n_categories = int(content["n_categories"]) + 1
        matrix = content["matrix"]
        if matrix.shape[1] > MAX_CONTENT_DIMS:
            from sklearn.decomposition import TruncatedSVD

            matrix = TruncatedSVD(MAX_CONTENT_DIMS, random_state=0).fit_transform(matrix)
        item_content = dense_rows(matrix) if matrix.shape[1] else np.zeros((n_items, 1), "float32")
        onehot = sparse.csr_matrix((np.ones(n_items), (np.arange(n_items), category)), shape=(n_items, n_categories))
        profile = dense_rows(decayed_interactions(data, 60.0) @ onehot)
        profile /= np.maximum(profile.sum(axis=1, keepdims=True), 1e-12)
    else:
        category = np.zeros(n_items, dtype="int32")
        n_categories = 1
        item_content = np.zeros((n_items, 1), dtype="float32")
        profile = np.zeros((n_users, 1), dtype="float32")
    return {"neighbours": neighbours, "neighbour_mask": mask, "category": category,
            "n_categories": np.int32(n_categories), "item_content": item_content, "user_profile": profile}


def _TwoTower(n_users: int, n_items: int, inputs: dict[str, np.ndarray], dim: int, l2: float):  # noqa: N802
    """Build the Keras model (a factory so that TensorFlow is imported only by ``fit``)."""
    import tensorflow as tf

    reg = tf.keras.regularizers.L2(l2)

    class TwoTower(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.neighbours = tf.constant(inputs["neighbours"])
            self.neighbour_mask = tf.constant(inputs["neighbour_mask"])
            self.category = tf.constant(inputs["category"])
            self.item_content = tf.constant(inputs["item_content"])
            self.user_profile = tf.constant(inputs["user_profile"])
            init = tf.keras.initializers.RandomNormal(stddev=0.05)
            self.user_embedding = tf.keras.layers.Embedding(n_users, dim, embeddings_initializer=init,
                                                            embeddings_regularizer=reg)
            self.item_embedding = tf.keras.layers.Embedding(n_items, dim, embeddings_initializer=init,
                                                            embeddings_regularizer=reg)
            self.category_embedding = tf.keras.layers.Embedding(int(inputs["n_categories"]), dim,
                                                                embeddings_initializer=init)
            self.content_projection = tf.keras.layers.Dense(dim, use_bias=False)
            self.profile_projection = tf.keras.layers.Dense(dim, use_bias=False)
            self.social_projection = tf.keras.layers.Dense(dim, use_bias=False)
            self.bias = tf.keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")

        def user_tower(self, users):
            own = self.user_embedding(users)
            nb = tf.gather(self.neighbours, users)
            m = tf.gather(self.neighbour_mask, users)[..., None]
            social = tf.reduce_sum(self.user_embedding(nb) * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
            profile = self.profile_projection(tf.gather(self.user_profile, users))
            return own + self.social_projection(social) + profile

        def item_tower(self, items):
            return (self.item_embedding(items) + self.category_embedding(tf.gather(self.category, items))
                    + self.content_projection(tf.gather(self.item_content, items)))

        def call(self, batch):
            users, items = batch
            logits = tf.reduce_sum(self.user_tower(users) * self.item_tower(items), axis=1)
            return logits + tf.squeeze(self.bias(items), axis=1)

        def zero_untrained(self, trained_users, trained_items):
            for layer, trained in ((self.user_embedding, trained_users), (self.item_embedding, trained_items)):
                weights = layer.get_weights()[0]
                weights[~trained] = 0.0
                layer.set_weights([weights])

        def user_vectors(self):
            return _batched(self.user_tower, n_users)

        def item_vectors(self):
            return _batched(self.item_tower, n_items)

        def item_bias(self):
            return self.bias.get_weights()[0][:, 0]

    def _batched(tower, n):
        return np.concatenate([tower(tf.range(s, min(s + 8192, n))).numpy() for s in range(0, n, 8192)])

    model = TwoTower()
    model((tf.zeros(1, "int32"), tf.zeros(1, "int32")))  # build the weights
    return model
