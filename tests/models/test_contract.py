"""The contract every registered recommender follows, and a known answer per model on tiny hand-made data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from fusion_tasks import modalities, models
from fusion_tasks.contract import GROUPS
from fusion_tasks.modalities.base import Vocabulary
from fusion_tasks.modalities.behavior import BehaviorFeatures
from fusion_tasks.modalities.content import ContentFeatures
from fusion_tasks.modalities.social import SocialFeatures
from fusion_tasks.models import bpr
from fusion_tasks.models.als import ALSRecommender
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.models.bpr import BPRRecommender
from fusion_tasks.models.content import ContentRecommender
from fusion_tasks.models.ease import EASERecommender
from fusion_tasks.models.popularity import PopularityRecommender
from fusion_tasks.models.social import SocialRecommender
from fusion_tasks.synthetic import SyntheticSpec
from fusion_tasks.training_data import TrainingData

NAMES = sorted(models.REGISTRY)


def model_params(names: list[str]) -> list[str]:
    return list(names)


@pytest.fixture(scope="module")
def data(prepared_world) -> TrainingData:
    root, config = prepared_world("contract", SyntheticSpec(n_days=70, n_users=80, n_items=120), holdout_days=7,
                                  validation_days=7, n_folds=2, candidates_per_model=20)
    return TrainingData.load(root, config, "test")


@pytest.fixture(scope="module")
def fitted(data: TrainingData) -> dict[str, BaseRecommender]:
    return {}


def fit_once(name: str, data: TrainingData, cache: dict[str, BaseRecommender]) -> BaseRecommender:
    if name not in cache:
        model = models.get(name)()
        assert model.fit(data) is model, "fit must return self"
        cache[name] = model
    return cache[name]


def users_of(data: TrainingData) -> np.ndarray:
    """Three users: the most active, a user without history at the origin (if any) and the last one."""
    activity = np.asarray((data.interactions > 0).sum(axis=1)).ravel()
    cold = np.flatnonzero(activity == 0)
    return np.array([int(activity.argmax()), int(cold[0]) if len(cold) else 1, data.n_users - 1])


# contract ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_params(NAMES))
def test_init_stores_params_only(name: str) -> None:
    cls = models.get(name)
    model = cls()
    params = model.get_params()
    assert set(vars(model)) == set(params), "__init__ must store exactly its parameters"
    assert not any(key.endswith("_") for key in vars(model))
    assert cls(**params).get_params() == params
    changed = {key: (value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else value)
               for key, value in params.items()}
    assert cls(**changed).get_params() == changed
    json.dumps(params)  # parameters are plain JSON values
    assert cls.name == name
    assert set(cls.modalities) <= set(modalities.REGISTRY)
    assert cls.group in GROUPS


@pytest.mark.parametrize("name", model_params(NAMES))
def test_score_shape_dtype_finite(name: str, data: TrainingData, fitted: dict) -> None:
    model = fit_once(name, data, fitted)
    users = users_of(data)
    scores = model.score(users)
    assert scores.shape == (len(users), data.n_items)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert scores.flags.writeable and scores.flags.c_contiguous, "a new array the caller may change in place"
    again = model.score(users)
    scores[:] = -1.0
    assert not np.shares_memory(scores, again) and (again != -1.0).any()
    everyone = model.score(np.arange(data.n_users))
    assert everyone.shape == (data.n_users, data.n_items)
    assert np.isfinite(everyone).all()
    assert (np.ptp(everyone, axis=1) > 0).any(), "scores must rank items for some user"


@pytest.mark.parametrize("name", ["als", "bpr", "item_knn", "ease"])
def test_collaborative_models_have_no_signal_for_a_user_without_history(name: str) -> None:
    """A constant row (up to the candidate pool's threshold of 1e-9 on the standard deviation): the
    pool then marks the model unavailable for the user, instead of ranking items by an artefact
    (such as item index)."""
    data = tiny([(0, 0, 1.0, 0), (0, 1, 1.0, 0), (1, 0, 1.0, 0), (1, 2, 1.0, 0), (2, 1, 1.0, 0), (2, 2, 1.0, 0)],
                n_users=4, n_items=4)
    model = models.get(name)().fit(data)
    scores = model.score(np.array([3, 0]))
    assert np.std(scores[0].astype("float64")) <= 1e-9, scores[0]
    assert np.std(scores[1].astype("float64")) > 1e-6


@pytest.mark.parametrize("name", model_params(NAMES))
def test_batch_equals_single(name: str, data: TrainingData, fitted: dict) -> None:
    model = fit_once(name, data, fitted)
    users = users_of(data)
    batch = model.score(users)
    for row, user in enumerate(users):
        np.testing.assert_allclose(batch[row], model.score(np.array([user]))[0], rtol=1e-6, atol=1e-6)
    # order of the batch does not matter either
    np.testing.assert_allclose(model.score(users[::-1]), batch[::-1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", model_params(NAMES))
def test_same_random_state_gives_the_same_scores(name: str, data: TrainingData, fitted: dict) -> None:
    model = fit_once(name, data, fitted)
    again = models.get(name)(**model.get_params()).fit(data)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(again.score(users), model.score(users))
    if "random_state" in model.get_params():
        other = models.get(name)(**{**model.get_params(), "random_state": 12345}).fit(data)
        assert not np.allclose(other.score(users), model.score(users)), "random_state must be used"


@pytest.mark.parametrize("name", model_params(NAMES))
def test_save_load_round_trip_without_pickle(name: str, data: TrainingData, fitted: dict, tmp_path: Path) -> None:
    model = fit_once(name, data, fitted)
    folder = model.save(tmp_path / name)
    assert folder == tmp_path / name
    files = {p.name for p in folder.rglob("*")}
    assert {"params.json", "state.npz"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))]
    with np.load(folder / "state.npz", allow_pickle=False) as state:  # raises on object arrays
        assert all(state[key].dtype != object for key in state.files)
    meta = json.loads((folder / "params.json").read_text())
    assert meta["model"] == name
    assert meta["params"] == model.get_params()

    loaded = models.get(name).load(folder)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    assert loaded.score(users).dtype == np.float32

    wrong = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match=f"holds a '{name}' model"):
        models.get(wrong).load(folder)


# known answers on tiny hand-made data ------------------------------------------------------------
ORIGIN = dt.date(2024, 3, 1)
ORIGIN_DAY = (ORIGIN - dt.date(1970, 1, 1)).days


def tiny(events: list[tuple[int, int, float, int]], n_users: int, n_items: int, *,
         categories: list[int] | None = None, ties: list[tuple[int, int]] = ()) -> TrainingData:
    """events: (user, item, weight, days before the origin); categories: one per item (1-based; 0 = none)."""
    frame = pd.DataFrame([(u, i, w, ORIGIN_DAY - ago) for u, i, w, ago in events],
                         columns=["user_idx", "item_idx", "weight", "day"])
    vocab = Vocabulary(users=np.array([f"u{j}" for j in range(n_users)]),
                       items=np.array([f"i{j}" for j in range(n_items)]))
    interactions = sparse.csr_matrix((frame["weight"], (frame["user_idx"], frame["item_idx"])),
                                     shape=(n_users, n_items), dtype="float32")
    features: dict = {"behavior": BehaviorFeatures(events=frame, seen=frame[["user_idx", "item_idx"]])}
    if categories is not None:
        cat = np.array(categories, dtype="int32")
        has = cat > 0
        matrix = sparse.csr_matrix((np.ones(has.sum()), (np.flatnonzero(has), cat[has] - 1)),
                                   shape=(n_items, int(cat.max())), dtype="float32")
        features["content"] = ContentFeatures(matrix=matrix, category_idx=cat, n_categories=int(cat.max()),
                                              has_content=has)
    if ties:
        src, dst = zip(*ties, strict=True)
        adjacency = sparse.csr_matrix((np.ones(len(ties)), (src, dst)), shape=(n_users, n_users), dtype="float32")
        features["social"] = SocialFeatures(adjacency=adjacency, has_social=np.diff(adjacency.indptr) > 0)
    return TrainingData(origin_name="test", origin=ORIGIN, vocab=vocab, events=frame, interactions=interactions,
                        seen=(interactions > 0).tocsr(), item_known=np.ones(n_items, dtype=bool), features=features)


def test_popularity_counts_one_vote_per_user_and_decays_with_age() -> None:
    data = tiny([
        (0, 2, 1.0, 0), (1, 2, 1.0, 0), (2, 2, 2.0, 0),  # item 2: three fresh users
        (0, 0, 1.0, 0), (1, 0, 1.0, 0),  # item 0: two fresh users
        (3, 4, 100.0, 0), (3, 4, 4.0, 0),  # item 4: one very active user -> still one vote
        (0, 1, 1.0, 30), (1, 1, 1.0, 30),  # item 1: two users a half-life ago -> 0.5 + 0.5
        (2, 3, 1.0, 60),  # item 3: one user two half-lives ago -> 0.25
    ], n_users=4, n_items=6)
    model = PopularityRecommender(half_life_days=30).fit(data)
    np.testing.assert_allclose(model.popularity_, np.array([2, 1, 3, 0.25, 1, 0]) / 3, rtol=1e-6)
    scores = model.score(np.array([0, 3]))
    assert int(scores[0].argmax()) == 2
    assert list(np.argsort(-scores[0], kind="stable")[:2]) == [2, 0]
    np.testing.assert_array_equal(scores[0], scores[1])  # the same list for everyone


def test_social_recommends_what_a_followed_user_did() -> None:
    # u0 follows u1; u1 follows u2; u3 has no ties. u1 did item 3, u2 did item 4, u0 did item 0.
    data = tiny([(0, 0, 1.0, 0), (1, 3, 2.0, 0), (2, 4, 1.0, 0), (3, 1, 1.0, 0)], n_users=4, n_items=5,
                ties=[(0, 1), (1, 2)])
    model = SocialRecommender(half_life_days=0, two_hop=0.3, prior=0.0).fit(data)
    scores = model.score(np.arange(4))
    np.testing.assert_allclose(scores[0], [0, 0, 0, 1.0, 0.3], rtol=1e-6)  # one hop 1.0 (one vote), two hops 0.3
    np.testing.assert_allclose(scores[1], [0, 0, 0, 0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(scores[2], np.zeros(5))  # follows nobody
    np.testing.assert_array_equal(scores[3], np.zeros(5))


def test_social_scores_the_share_of_ties_who_did_an_item_and_falls_back_to_popularity() -> None:
    # u0 follows u1, u2, u3: two of them did item 0, one did item 1; items 2 and 3 only by others
    # (item 2 by two users, item 3 by one); u4 has no ties
    data = tiny([(1, 0, 1.0, 0), (2, 0, 5.0, 0), (3, 1, 1.0, 0), (5, 2, 1.0, 0), (6, 2, 1.0, 0), (5, 3, 1.0, 0)],
                n_users=7, n_items=4, ties=[(0, 1), (0, 2), (0, 3)])
    model = SocialRecommender(half_life_days=0, two_hop=0.0, prior=0.1).fit(data)
    scores = model.score(np.array([0, 4]))
    pop = np.array([2, 1, 2, 1]) / 2
    np.testing.assert_allclose(scores[0], np.array([2 / 3, 1 / 3, 0, 0]) + 0.1 * pop, rtol=1e-6)
    assert list(np.argsort(-scores[0], kind="stable")) == [0, 1, 2, 3]
    np.testing.assert_allclose(scores[1], 0.1 * pop, rtol=1e-6)  # no ties: popularity alone


def test_social_two_hop_does_not_recommend_the_user_own_items_through_a_cycle() -> None:
    # u0 <-> u1 (a cycle): the two-hop path u0 -> u1 -> u0 must not feed u0's own history back
    data = tiny([(0, 0, 1.0, 0), (1, 1, 1.0, 0)], n_users=2, n_items=2, ties=[(0, 1), (1, 0)])
    scores = SocialRecommender(two_hop=0.3, prior=0.0).fit(data).score(np.array([0]))
    np.testing.assert_allclose(scores[0], [0.0, 1.0], rtol=1e-6)


def test_content_ranks_an_item_of_the_user_category_first() -> None:
    # items 0-2 category 1, items 3-5 category 2, item 6 no content; u0 likes category 1, u1 category 2
    data = tiny([(0, 0, 1.0, 0), (0, 1, 1.0, 0), (1, 3, 1.0, 0), (1, 5, 1.0, 0)], n_users=3, n_items=7,
                categories=[1, 1, 1, 2, 2, 2, 0])
    scores = ContentRecommender(smoothing=0.0).fit(data).score(np.arange(3))
    # P(c | u) is 1 for the user's category; P(i | c) = (votes + 0.5) / category mass (2 + 1.5)
    np.testing.assert_allclose(scores[0], [1.5 / 3.5, 1.5 / 3.5, 0.5 / 3.5, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [0, 0, 0, 1.5 / 3.5, 0.5 / 3.5, 1.5 / 3.5, 0], rtol=1e-6)
    assert scores[2].sum() == 0  # no history and no smoothing: no signal


def test_content_smoothing_falls_back_to_popularity_within_categories() -> None:
    # u0: two of category 1; u1 (no history) gets the catalogue's category shares (1/2 each)
    data = tiny([(0, 0, 1.0, 0), (0, 1, 1.0, 0), (2, 3, 1.0, 0), (3, 3, 1.0, 0)], n_users=4, n_items=5,
                categories=[1, 1, 1, 2, 2])
    model = ContentRecommender(smoothing=2.0).fit(data)
    shares = np.array([0.5, 0.5])  # catalogue: two events in each category
    np.testing.assert_allclose(model.user_category_[0, 1:], (np.array([2, 0]) + 2 * shares) / 4, rtol=1e-6)
    np.testing.assert_allclose(model.user_category_[1, 1:], shares, rtol=1e-6)
    scores = model.score(np.array([1]))[0]
    assert int(scores.argmax()) == 3  # the most popular item of an equally likely category
    np.testing.assert_allclose(scores[3], 0.5 * 2.5 / 3.0, rtol=1e-6)


def test_content_attributes_reorder_items_within_a_category() -> None:
    # two items of category 1 with equal popularity; the user's profile matches item 1 by attributes only
    data = tiny([(0, 0, 1.0, 0), (1, 1, 1.0, 0), (1, 2, 1.0, 0)], n_users=3, n_items=4, categories=[1, 1, 1, 2])
    matrix = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [1, 1, 0], [0, 0, 0]], dtype="float32"))
    data.features["content"] = dataclasses.replace(data.features["content"], matrix=matrix)
    plain = ContentRecommender(smoothing=0.0).fit(data).score(np.array([0]))[0]
    assert plain[1] == plain[2]
    ordered = ContentRecommender(smoothing=0.0, attribute_weight=1.0).fit(data).score(np.array([0]))[0]
    assert ordered[1] > ordered[2]


def block_data(n_per_block: int = 6) -> tuple[TrainingData, list[tuple[int, int]]]:
    """Two taste blocks: users of block b interact with every item of block b but one (held out)."""
    events, held = [], []
    n = 2 * n_per_block
    for u in range(n):
        block = u // n_per_block
        items = list(range(block * n_per_block, (block + 1) * n_per_block))
        skip = items[u % n_per_block]
        held.append((u, skip))
        events += [(u, i, 1.0, 0) for i in items if i != skip]
    return tiny(events, n_users=n, n_items=n), held


def test_als_ranks_the_missing_item_of_the_user_block_first() -> None:
    data, held = block_data()
    model = ALSRecommender(factors=4, iterations=15, random_state=3).fit(data)
    scores = model.score(np.arange(data.n_users))
    seen = data.interactions.toarray() > 0
    for user, item in held:
        unseen = np.where(seen[user], -np.inf, scores[user])
        assert int(unseen.argmax()) == item, (user, item, scores[user])


def test_bpr_ranks_the_missing_item_of_the_user_block_first() -> None:
    data, held = block_data()
    model = BPRRecommender(factors=4, learning_rate=0.05, iterations=200, random_state=3).fit(data)
    scores = model.score(np.arange(data.n_users))
    seen = data.interactions.toarray() > 0
    for user, item in held:
        assert int(np.where(seen[user], -np.inf, scores[user]).argmax()) == item, (user, item, scores[user])


def test_bpr_caps_the_sgd_steps_of_a_fit_and_reuses_a_fit_that_the_cap_makes_the_same(monkeypatch) -> None:
    data, _ = block_data()
    n = data.interactions.nnz
    monkeypatch.setattr(bpr, "MAX_SAMPLES", n * 40 + n // 2)  # 40 epochs at most
    capped = BPRRecommender(factors=4, learning_rate=0.05, iterations=200, random_state=3).fit(data)
    assert capped.epochs_ == 40
    asked = BPRRecommender(factors=4, learning_rate=0.05, iterations=40, random_state=3).fit(data)
    np.testing.assert_array_equal(capped.user_factors_, asked.user_factors_)
    np.testing.assert_array_equal(capped.item_factors_, asked.item_factors_)
    assert BPRRecommender(iterations=25).fit(data).epochs_ == 25  # under the cap: the epochs asked for
    assert BPRRecommender(iterations=5).epochs(bpr.MAX_SAMPLES + 1) == 1  # at least one epoch

    # another iterations over the cap is the same fit: taken from the previous one, without fitting
    monkeypatch.setattr(BPRRecommender, "_fit", lambda self, matrix: pytest.fail("fitted again"))
    reused = BPRRecommender(factors=4, learning_rate=0.05, iterations=100, random_state=3).fit_from(data, capped)
    assert reused.epochs_ == 40 and reused.user_factors_ is capped.user_factors_
    # any other difference (here the epochs, one of them under the cap, or the seed) is a fit of its own
    for other in (BPRRecommender(factors=4, learning_rate=0.05, iterations=30, random_state=3),
                  BPRRecommender(factors=4, learning_rate=0.05, iterations=100, random_state=4)):
        with pytest.raises(pytest.fail.Exception, match="fitted again"):
            other.fit_from(data, capped)


def test_ease_ranks_the_missing_item_of_the_user_block_first() -> None:
    data, held = block_data()
    scores = EASERecommender(l2=1.0).fit(data).score(np.arange(data.n_users))
    seen = data.interactions.toarray() > 0
    for user, item in held:
        assert int(np.where(seen[user], -np.inf, scores[user]).argmax()) == item, (user, item, scores[user])


def test_ease_weights_are_the_closed_form_and_uncovered_items_rank_last() -> None:
    # items 0-2 have two users each, item 3 one user (below min_users), item 4 none
    data = tiny([(0, 0, 1.0, 0), (0, 1, 1.0, 0), (1, 0, 1.0, 0), (1, 2, 1.0, 0), (2, 1, 3.0, 0), (2, 2, 1.0, 0),
                 (2, 3, 1.0, 0)], n_users=3, n_items=5)
    model = EASERecommender(l2=0.5, min_users=2).fit(data)
    assert model.items_.tolist() == [0, 1, 2]
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype="float64")  # binary: weight 3.0 counts once
    p = np.linalg.inv(x.T @ x + 0.5 * np.eye(3))
    expected = p / -np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights_, expected, rtol=1e-5)
    scores = model.score(np.arange(3))
    np.testing.assert_allclose(scores[:, :3], x @ expected, rtol=1e-5)
    assert (scores[:, 3:] < scores[:, :3].min(axis=1, keepdims=True)).all()
    assert np.isfinite(scores).all()


def test_ease_has_no_signal_for_a_user_whose_items_are_all_uncovered() -> None:
    # item 3 has one user (below min_users): user 3, who only has item 3, is unknown to the model
    data = tiny([(0, 0, 1.0, 0), (0, 1, 1.0, 0), (1, 0, 1.0, 0), (1, 1, 1.0, 0), (3, 3, 1.0, 0)],
                n_users=4, n_items=4)
    model = EASERecommender(l2=0.5, min_users=2).fit(data)
    scores = model.score(np.array([3, 0, 3]))
    assert np.ptp(scores[0]) == 0 and np.ptp(scores[2]) == 0
    assert scores[1, :2].min() > scores[1, 2:].max()


@pytest.mark.parametrize("name", NAMES)
def test_search_space_starts_at_the_defaults_and_names_real_parameters(name: str) -> None:
    cls = models.get(name)
    defaults = cls().get_params()
    for param, values in cls.search_space.items():
        assert param in defaults, f"{name}.search_space names an unknown parameter {param}"
        assert values[0] == defaults[param], f"{name}.{param}: the first value searched must be the default"
        assert len(set(values)) == len(values)
        cls(**{param: values[-1]})  # every value is accepted
