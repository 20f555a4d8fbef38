"""Deep-learning fusion on tiny synthetic fold pools with a known answer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fusion_tasks.fusion.base import CONTRIBUTION_GROUPS, FitInput, FoldPool, pool_ndcg
from fusion_tasks.fusion.candidates import CONTEXT_FEATURES
from fusion_tasks.fusion.deep_fusion import DeepFusion
from fusion_tasks.fusion.weighted_sum import WeightedSum

MODELS = ("als", "item_knn", "content", "social")  # behaviour, behaviour, content, social
CONTEXT = tuple(CONTEXT_FEATURES)
K = 10
CAP = 20  # ranks beyond a model's own top-CAP are CAP + 1, as in the real pools


def make_pool(seed: int, logit, n_users: int = 300, per_user: int = 30, social_missing: float = 0.0) -> FoldPool:
    """Every user gets ``per_user`` items; each model's z is N(0, 1) within the user; ``label`` is
    drawn from ``sigmoid(logit(pool))``; users without any positive are dropped."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    users = np.repeat(np.arange(n_users), per_user)
    pool = pd.DataFrame({"user_idx": users.astype("int32"),
                         "item_idx": np.concatenate([rng.choice(500, per_user, replace=False)
                                                     for _ in range(n_users)]).astype("int32")})
    no_social = np.repeat(rng.random(n_users) < social_missing, per_user)
    for m in MODELS:
        z = rng.standard_normal(n)
        avail = np.ones(n, dtype="int8")
        if m == "social":
            z[no_social], avail[no_social] = 0.0, 0
        pool[f"z_{m}"] = z.astype("float32")
        rank = pool.assign(z=z).groupby("user_idx")["z"].rank(ascending=False, method="first").to_numpy()
        pool[f"rank_{m}"] = np.where((rank > CAP) | (avail == 0), CAP + 1, rank).astype("int32")
        pool[f"avail_{m}"] = avail
    pool["user_activity"] = np.repeat(np.log1p(rng.poisson(20, n_users)), per_user).astype("float32")
    pool["user_has_social"] = (~no_social).astype("int8")
    pool["item_has_content"] = (rng.random(n) < 0.9).astype("int8")
    pool["item_popularity"] = np.log1p(rng.poisson(30, n)).astype("float32")
    pool["user_category_share"] = rng.random(n).astype("float32")
    pool["user_ties"] = np.repeat(np.log1p(rng.poisson(3, n_users)), per_user).astype("float32")
    pool["item_category"] = rng.integers(0, 6, n).astype("int32")
    pool["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit(pool)))).astype("int8")
    relevant = pool.groupby("user_idx")["label"].sum()
    pool = pool[pool["user_idx"].isin(relevant.index[relevant > 0])].reset_index(drop=True)
    return FoldPool(f"fold{seed}", pool, relevant[relevant > 0])


def interaction(pool: pd.DataFrame) -> np.ndarray:
    """Relevant when the behaviour and the social model agree strongly, in either direction."""
    return 2.5 * pool["z_als"].to_numpy("float64") * pool["z_social"].to_numpy("float64") - 3.5


def social_only(pool: pd.DataFrame) -> np.ndarray:
    return 2.0 * pool["z_social"].to_numpy("float64") - 3.5


def fit_input(folds, models=MODELS, context=CONTEXT, seed: int = 7) -> FitInput:
    return FitInput(folds=tuple(folds), models=tuple(models), context=tuple(context), k=K, seed=seed)


@pytest.fixture(scope="module")
def interaction_case():
    folds = [make_pool(s, interaction) for s in (1, 2, 3)]
    method = DeepFusion(verify_forward=True)
    fitted = method.fit(fit_input(folds))
    return folds, method, fitted, make_pool(99, interaction)


@pytest.fixture(scope="module")
def social_case():
    folds = [make_pool(s, social_only, social_missing=0.2) for s in (11, 12, 13)]
    fitted = DeepFusion().fit(fit_input(folds))
    return folds, fitted, make_pool(98, social_only, social_missing=0.2)


def test_registered_and_light_at_import():
    from fusion_tasks.fusion import methods

    assert methods.REGISTRY["deep_fusion"] is DeepFusion
    assert DeepFusion.simplicity == 2
    probe = ("import sys, fusion_tasks.fusion.methods as m; assert 'deep_fusion' in m.REGISTRY; "
             "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_nothing_to_learn_gives_a_constant_finite_score():
    """No model and no context column: a constant (the training log-odds), without TensorFlow."""
    folds = [make_pool(s, social_only, n_users=40) for s in (1, 2)]
    method = DeepFusion()
    fitted = method.fit(fit_input(folds, models=(), context=()))
    pool = folds[0].pool
    scores = method.scores(fitted, pool)
    assert np.isfinite(scores).all() and np.ptp(scores) == 0.0
    assert np.allclose(method.contributions(fitted, pool).sum(axis=1), scores)


@pytest.mark.slow
def test_numpy_forward_equals_keras(interaction_case):
    _, method, fitted, _ = interaction_case
    assert method.forward_gap_ < 1e-4
    assert fitted["training_rows"] > 0 and len(fitted["members"]) == 3
    assert all(epochs >= 1 for epochs in fitted["epochs_trained"])


@pytest.mark.slow
def test_scores_finite_contributions_sum_and_json_round_trip(interaction_case):
    _, method, fitted, test = interaction_case
    scores = method.scores(fitted, test.pool)
    assert scores.dtype == np.float64 and np.isfinite(scores).all()
    parts = method.contributions(fitted, test.pool)
    assert list(parts.columns) == [f"contribution_{g}" for g in CONTRIBUTION_GROUPS]
    assert np.allclose(parts.sum(axis=1).to_numpy(), scores, rtol=0, atol=1e-9)
    assert "weights" not in fitted  # that key is the weighted sum's per-model weights in metrics.json
    again = json.loads(json.dumps(fitted))
    assert np.array_equal(method.scores(again, test.pool), scores)


@pytest.mark.slow
def test_the_score_is_the_mean_of_the_member_networks(interaction_case):
    """Each member was trained from its own seed (its own negatives and initial weights), so the members differ;
    the ensemble scores their mean, and each member alone is a valid fit."""
    _, method, fitted, test = interaction_case
    alone = [method.scores({**fitted, "members": [member]}, test.pool) for member in fitted["members"]]
    assert len(alone) == method.members == 3
    assert all(not np.array_equal(alone[0], other) for other in alone[1:])
    assert np.allclose(method.scores(fitted, test.pool), np.mean(alone, axis=0), rtol=0, atol=1e-9)


def test_an_ensemble_without_members_is_refused():
    with pytest.raises(ValueError, match="at least one member"):
        DeepFusion(members=0)


@pytest.mark.slow
def test_same_seed_same_scores(interaction_case):
    folds, method, fitted, test = interaction_case
    refit = DeepFusion().fit(fit_input(folds))
    assert np.array_equal(method.scores(refit, test.pool), method.scores(fitted, test.pool))


@pytest.mark.slow
def test_learns_an_interaction_the_weighted_sum_cannot(interaction_case):
    folds, method, fitted, test = interaction_case
    ndcg = pool_ndcg(test.pool, method.scores(fitted, test.pool), test.n_relevant, K)
    for m in MODELS:
        single = pool_ndcg(test.pool, test.pool[f"z_{m}"].to_numpy("float64"), test.n_relevant, K)
        assert ndcg > single + 0.05, (m, ndcg, single)
    weighted = WeightedSum()
    linear = pool_ndcg(test.pool, weighted.scores(weighted.fit(fit_input(folds)), test.pool), test.n_relevant, K)
    assert ndcg >= linear + 0.02, (ndcg, linear)


@pytest.mark.slow
def test_social_contribution_dominates_when_only_social_carries_signal(social_case):
    folds, fitted, test = social_case
    method = DeepFusion()
    scores = method.scores(fitted, test.pool)
    assert pool_ndcg(test.pool, scores, test.n_relevant, K) > max(
        pool_ndcg(test.pool, test.pool[f"z_{m}"].to_numpy("float64"), test.n_relevant, K) for m in MODELS
        if m != "social")
    strength = method.contributions(fitted, test.pool).abs().mean()
    modalities = {g: strength[f"contribution_{g}"] for g in ("behavior", "content", "social")}
    assert max(modalities, key=modalities.get) == "social", modalities


@pytest.mark.slow
def test_reads_only_the_models_and_context_it_was_given(social_case):
    folds, _, test = social_case
    method = DeepFusion()
    fitted = method.fit(fit_input(folds, models=("als", "social"), context=("user_activity", "item_popularity",
                                                                           "user_has_social", "user_ties")))
    assert fitted["models"] == ["als", "social"]
    assert not any("content" in c or "item_knn" in c for c in fitted["columns"])
    for member in fitted["members"]:
        assert member["architecture"]["category_embedding"] is None
        assert {s["group"] for s in member["architecture"]["subnets"]} == {"behavior", "social", "cross"}
    kept = [c for c in test.pool.columns if not (c.endswith(("_content", "_item_knn")) or c in (
        "item_has_content", "user_category_share", "item_category"))]
    full, narrow = method.scores(fitted, test.pool), method.scores(fitted, test.pool[kept])
    assert np.array_equal(full, narrow) and np.isfinite(full).all()
    parts = method.contributions(fitted, test.pool[kept])
    assert (parts["contribution_content"] == 0).all()


@pytest.mark.slow
def test_one_model_constant_columns_and_missing_availability_stay_finite():
    folds = [make_pool(s, social_only, n_users=80, social_missing=1.0) for s in (21, 22)]
    for f in folds:  # no social signal at all, and a constant context column
        f.pool["item_popularity"] = 1.0
        f.pool["label"] = (f.pool["z_als"] > 1.2).astype("int8")
    method = DeepFusion()
    for models in (("social",), ("als",)):
        fitted = method.fit(fit_input(folds, models=models))
        pool = folds[0].pool.copy()
        pool.loc[pool.index[:5], "item_category"] = 1000  # a category never seen in training
        scores = method.scores(fitted, pool)
        assert np.isfinite(scores).all()
        assert np.allclose(method.contributions(fitted, pool).sum(axis=1), scores, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_a_modality_without_data_gets_no_subnet_and_no_contribution():
    """Were its subnet kept, it would learn from the behaviour context it also reads and publish
    behaviour's signal as social's contribution."""
    folds = [make_pool(s, lambda p: 2.0 * p["z_als"].to_numpy("float64") - 3.5, n_users=120, social_missing=1.0)
             for s in (31, 32)]
    for f in folds:  # no ties anywhere: every social column is constant
        f.pool["user_ties"] = 0.0
    method = DeepFusion(members=1)
    fitted = method.fit(fit_input(folds))
    groups = {s["group"] for s in fitted["members"][0]["architecture"]["subnets"]}
    assert groups == {"behavior", "content", "cross"}, groups
    parts = method.contributions(fitted, folds[0].pool)
    assert (parts["contribution_social"] == 0).all()
    assert np.allclose(parts.sum(axis=1), method.scores(fitted, folds[0].pool), rtol=0, atol=1e-9)
