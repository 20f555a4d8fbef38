"""Blocked pool scoring: the pool of its definition (a brute-force reference, user by user, in float64), whatever
the block size, in memory bounded by the block (never users x items)."""

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
    fitted = {name: models.get(name)().fit(data)
              for name in ("popularity", "item_knn", "content", "social", "als", "item_embedding")}
    return data, fitted


def reference_pool(data, fitted, users: np.ndarray, per_model: int) -> pd.DataFrame:
    """The pool by its definition, user by user, in float64: a model's z-scores over the user's valid items
    (known, not seen), its top-N by (score desc, item asc) when its scores are not constant, the union of
    those, and every model's z-score and rank (N + 1 outside its top-N) on it."""
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
    rows = []
    for user in users:
        valid = data.item_known & ~data.seen[user].toarray().ravel()
        items = np.flatnonzero(valid)
        z, rank, signal = {}, {}, {}
        for name, model in fitted.items():
            s = model.score(np.array([user]))[0].astype("float64")[items]
            std = s.std()
            signal[name] = std > 1e-6
            z[name] = (s - s.mean()) / std if signal[name] else np.zeros(len(items))
            order = sorted(range(len(items)), key=lambda i, s=s: (-s[i], items[i]))[:per_model]
            rank[name] = {int(items[i]): r for r, i in enumerate(order, 1)} if signal[name] else {}
        pooled = sorted(set().union(*(r.keys() for r in rank.values())))
        where = np.searchsorted(items, pooled)
        for item, at in zip(pooled, where, strict=True):
            row = {"user_idx": user, "item_idx": item}
            for name in fitted:
                row |= {f"z_{name}": z[name][at], f"rank_{name}": rank[name].get(item, per_model + 1),
                        f"avail_{name}": int(signal[name])}
            row |= {"user_activity": np.log1p(activity[user]), "user_has_social": has_social[user],
                    "item_has_content": has_content[item], "item_popularity": np.log1p(popularity[item]),
                    "user_category_share": share[user, category[item]], "user_ties": np.log1p(ties[user]),
                    "item_category": category[item]}
            rows.append(row)
    columns = candidates.pool_columns(list(fitted), labelled=False)
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_the_blocked_pool_equals_the_dense_reference(world, block: int) -> None:
    data, fitted = world
    users = np.arange(data.n_users)
    expected = reference_pool(data, fitted, users, 12)
    got = candidates.score_pool(data, fitted, users, 12, block_users=block)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-4, rtol=1e-4)


def test_every_dense_array_is_one_block_of_users_never_users_times_items(world, monkeypatch) -> None:
    """The dense arrays of scoring (a model's scores, their z-scores, the valid-item mask) are made per block:
    each model is asked for at most ``block_users`` users at a time, on a world of many blocks; a low-rank model
    (ALS, popularity, the embedding model) gives its factors instead, and its scores are made in blocks of at
    most ``FACTORED_BLOCK_BYTES``."""
    data, fitted = world
    asked: dict[str, list[int]] = {name: [] for name in fitted}
    for name, model in fitted.items():
        for method in ("score", "low_rank"):
            original = getattr(model, method)
            monkeypatch.setattr(model, method, lambda users, f=original, name=name: asked[name].append(len(users))
                                or f(users))
    selected: list[tuple[int, int]] = []
    top_n = candidates.topn.top_n
    monkeypatch.setattr(candidates.topn, "top_n", lambda scores, n: selected.append(scores.shape) or top_n(scores, n))
    monkeypatch.setattr(candidates, "FACTORED_BLOCK_BYTES", 4 * data.n_items * 5)  # at most 5 rows of scores
    users = np.arange(data.n_users)
    got = candidates.score_pool(data, fitted, users, 12, block_users=16)
    for name in fitted:
        assert max(asked[name]) == 16 and sum(asked[name]) >= len(users)
    factored = sum(fitted[name].low_rank(users[:1]) is not None for name in fitted)
    assert factored == 3
    assert max(rows for rows, _ in selected) == 16
    assert sum(rows <= 5 for rows, _ in selected) >= factored * len(users) // 5  # blocks of at most 5 rows
    pd.testing.assert_frame_equal(got, reference_pool(data, fitted, users, 12), check_exact=False, atol=1e-4,
                                  rtol=1e-4)


def test_a_model_whose_modality_has_no_data_says_nothing(prepared_world) -> None:
    """A data set without item embeddings (like Ciao): the embedding model is not tuned (its search would only
    compare settings that all score nothing), is not asked to score, and has no signal anywhere in the pool."""
    from fusion_tasks.models import load_tuning, train_model

    root, config = prepared_world("no-embeddings", SyntheticSpec(n_days=60, n_users=80, n_items=120,
                                                                 share_with_embedding=0.0),
                                  holdout_days=7, validation_days=7, n_folds=2)
    data = TrainingData.load(root, config, "final")
    assert data.features["item_embedding"].is_empty() and not data.features["content"].is_empty()
    train_model(root, config, "item_embedding")
    assert load_tuning(root, config, "item_embedding")["skipped"] == "no item_embedding data at a fold's origin"
    fitted = {name: models.get(name)().fit(data) for name in ("popularity", "item_embedding")}
    fitted["item_embedding"].score = None  # not asked
    pool = candidates.score_pool(data, fitted, np.arange(data.n_users), 10)
    assert (pool["avail_item_embedding"] == 0).all() and (pool["rank_item_embedding"] == 11).all()
    assert (pool["z_item_embedding"] == 0).all() and (pool["rank_popularity"] <= 10).all()


@pytest.mark.parametrize("known_items", [50, 256, 300])
def test_the_product_by_panels_of_items_is_the_product(known_items: int) -> None:
    """A low-rank model's block of scores is made a panel of ``PANEL_ITEMS`` known items at a time: the same as
    one product, with fewer known items than a panel, exactly whole panels, and panels and a rest."""
    rng = np.random.default_rng(known_items)
    right = rng.standard_normal((known_items + 20, 8)).astype("float32")
    known = np.zeros(len(right), dtype=bool)
    known[rng.choice(len(right), known_items, replace=False)] = True
    factored = candidates._Factored(right, known)
    left = rng.standard_normal((7, 8)).astype("float32")
    out = np.full((7, known_items), np.nan, dtype="float32")
    factored._product(left, out)
    np.testing.assert_allclose(out, left @ right[known].T, rtol=1e-5, atol=1e-5)
