"""Blocked pool scoring: the same pool as the dense reference, whatever the block size, in memory bounded by the
block (never users x items)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import models
from fusion_tasks.fusion import candidates
from fusion_tasks.synthetic import SyntheticSpec
from fusion_tasks.training_data import TrainingData


@pytest.fixture(scope="module")
def world(prepared_world):
    root, config = prepared_world("pool-scoring", SyntheticSpec(n_days=60, n_users=150, n_items=220), holdout_days=7,
                                  validation_days=7, n_folds=1)
    data = TrainingData.load(root, config, "final")
    fitted = {name: models.get(name)().fit(data) for name in ("popularity", "item_knn", "content", "social")}
    return data, fitted


def reference_pool(data, fitted, users: np.ndarray,
               per_model: int) -> pd.DataFrame:
    """The pool as it was computed before blocks and gathering: a dense rank matrix per model and block."""
    activity = np.asarray((data.interactions > 0).sum(axis=1)).ravel()
    has_social = (data.features["social"].has_social if data.has("social")
                  else np.zeros(data.n_users, dtype=bool))
    has_content = (data.features["content"].has_content if data.has("content")
                   else np.zeros(data.n_items, dtype=bool))
    popularity = np.asarray((data.interactions > 0).sum(axis=0)).ravel()
    ties = (np.diff(data.features["social"].adjacency.indptr) if data.has("social")
            else np.zeros(data.n_users, dtype=int))
    category = (data.features["content"].category_idx if data.has("content")
                else np.zeros(data.n_items, dtype="int32"))
    share = candidates._category_share(data.interactions, category)
    parts = []
    for start in range(0, len(users), 256):
        batch = users[start:start + 256]
        valid = np.broadcast_to(data.item_known, (len(batch), data.n_items)).copy()
        seen = data.seen[batch]
        valid[np.repeat(np.arange(len(batch)), np.diff(seen.indptr)), seen.indices] = False
        zs, ranks, available = {}, {}, {}
        in_pool = np.zeros_like(valid)
        for name, model in fitted.items():
            z, top, has_signal = candidates._standardise_and_top(model.score(batch), valid, per_model)
            zs[name], available[name] = z, has_signal
            rank = np.full(valid.shape, per_model + 1, dtype="int32")
            np.put_along_axis(rank, top, np.arange(1, top.shape[1] + 1, dtype="int32")[None, :], axis=1)
            rank[~valid] = per_model + 1
            ranks[name] = rank
            in_pool |= rank <= per_model
        rows, cols = np.nonzero(in_pool & valid)
        part = {"user_idx": batch[rows].astype("int32"), "item_idx": cols.astype("int32")}
        for name in fitted:
            part[f"z_{name}"] = zs[name][rows, cols]
            part[f"rank_{name}"] = ranks[name][rows, cols]
            part[f"avail_{name}"] = available[name][rows].astype("int8")
        part["user_activity"] = np.log1p(activity[batch[rows]]).astype("float32")
        part["user_has_social"] = has_social[batch[rows]].astype("int8")
        part["item_has_content"] = has_content[cols].astype("int8")
        part["item_popularity"] = np.log1p(popularity[cols]).astype("float32")
        part["user_category_share"] = np.asarray(share[batch[rows], category[cols]]).ravel().astype("float32")
        part["user_ties"] = np.log1p(ties[batch[rows]]).astype("float32")
        part["item_category"] = category[cols].astype("int32")
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)



@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_the_blocked_pool_equals_the_dense_reference(world, block: int) -> None:
    data, fitted = world
    users = np.arange(data.n_users)
    expected = reference_pool(data, fitted, users, 12)
    pd.testing.assert_frame_equal(candidates.score_pool(data, fitted, users, 12, block_users=block), expected)


def test_every_dense_array_is_one_block_of_users_never_users_times_items(world, monkeypatch) -> None:
    """The dense arrays of scoring (a model's scores, their z-scores, the valid-item mask) are made per block:
    each model is asked for at most ``block_users`` users at a time, on a world of many blocks."""
    data, fitted = world
    asked: list[int] = []
    for model in fitted.values():
        score = model.score
        monkeypatch.setattr(model, "score", lambda users, score=score: asked.append(len(users)) or score(users))
    users = np.arange(data.n_users)
    candidates.score_pool(data, fitted, users, 12, block_users=16)
    assert max(asked) == 16 and sum(asked) == len(users) * len(fitted)
