"""The benchmark's baselines on a tiny matrix: candidate rule, tie order and what each one learns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from bench import baselines

# 4 users x 5 items; items 0 and 1 are co-consumed, item 4 is unknown at the origin
X = sparse.csr_matrix(np.array([
    [1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0],
    [1, 0, 0, 1, 0],
    [0, 1, 0, 0, 0],
], dtype="float32"))
KNOWN = np.array([True, True, True, True, False])


def test_top_k_excludes_seen_and_unknown_items_and_breaks_ties_by_item():
    model = baselines.MostPop().fit(X)
    u, i, r, _ = baselines.top_k(model, np.array([0, 3]), KNOWN, X, 3)
    got = {int(user): list(i[u == user]) for user in (0, 3)}
    assert got[0] == [2, 3]  # items 0, 1 seen; 4 unknown; 2 and 3 tie (1 user each): item order
    assert got[3] == [0, 2, 3]
    assert list(r[u == 3]) == [1, 2, 3]


def test_most_pop_window_counts_recent_users_only():
    users, items = np.array([0, 1, 2]), np.array([0, 0, 1])
    days = np.array([1, 1, 99])
    model = baselines.MostPop(window_days=10).fit(X, events_day=days, origin_day=100, events=(users, items))
    assert model.pop_.argmax() == 1


def test_item_knn_recommends_the_co_consumed_item():
    model = baselines.ItemKNN(neighbours=10).fit(X)
    u, i, _, _ = baselines.top_k(model, np.array([3]), KNOWN, X, 1)
    assert i.tolist() == [0]  # user 3 has item 1; item 0 is its nearest neighbour


def test_ease_models_only_the_popular_items_and_ranks_the_rest_last():
    model = baselines.EASE(l2=1.0, max_items=2, min_users=1).fit(X, item_known=KNOWN)
    assert sorted(model.items_.tolist()) == [0, 1]
    scores = model.score(np.array([3]))
    assert np.isfinite(scores[0, 0]) and np.isneginf(scores[0, 2])
    u, i, _, _ = baselines.top_k(model, np.array([3]), KNOWN, X, 3)
    assert i.tolist() == [0, 2, 3]


@pytest.mark.parametrize("name", ["ALS (implicit)", "BPR (implicit)"])
def test_implicit_models_score_every_item(name):
    pytest.importorskip("implicit")
    factory, grid = baselines.BASELINES[name]
    params = {**grid[0], "iterations": 3, "factors": 4}
    model = factory(**params).fit(X, seed=1)
    scores = model.score(np.array([0, 1]))
    assert scores.shape == (2, 5) and np.isfinite(scores).all()


def test_decayed_pop_counts_a_pair_once_by_its_latest_day_and_decays_with_age():
    # item 0: one user, twice (100 and 10 days ago: counts once, 10 days ago); item 1: two users 30 days ago
    users, items = np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1])
    days = np.array([0, 90, 70, 70])
    model = baselines.DecayedPop(half_life_days=10).fit(X, events_day=days, origin_day=100, events=(users, items))
    np.testing.assert_allclose(model.pop_[:2], [0.5, 2 * 0.125], rtol=1e-6)
    slow = baselines.DecayedPop(half_life_days=1000).fit(X, events_day=days, origin_day=100, events=(users, items))
    assert slow.pop_.argmax() == 1  # with a long half-life the two-user item wins
