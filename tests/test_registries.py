"""Every extension point is one registry built from its package folder, and every implementation in it keeps the
contract of its interface (the models' own contract test is tests/models/test_contract.py)."""

from __future__ import annotations

import abc
import inspect
import json

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import catalogue, modalities, models, sinks
from fusion_tasks.contract import CONTRIBUTION_GROUPS, CONTRIBUTIONS, GROUPS
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.base import FusionMethod
from fusion_tasks.modalities.base import Modality
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.sinks.base import Sink

REGISTRIES = {"modalities": modalities.REGISTRY, "models": models.REGISTRY, "methods": methods.REGISTRY,
              "sinks": sinks.REGISTRY}
INTERFACES = {"models": BaseRecommender, "methods": FusionMethod, "sinks": Sink}


@pytest.mark.parametrize("point", sorted(REGISTRIES))
def test_each_registry_holds_exactly_the_modules_of_its_package(point: str) -> None:
    assert sorted(REGISTRIES[point]) == sorted(catalogue.names(point))
    assert REGISTRIES[point], point


@pytest.mark.parametrize("point", sorted(INTERFACES))
def test_every_registered_class_implements_its_abstract_interface(point: str) -> None:
    interface = INTERFACES[point]
    assert inspect.isabstract(interface) and isinstance(interface, abc.ABCMeta)
    for name, cls in REGISTRIES[point].items():
        assert issubclass(cls, interface) and not inspect.isabstract(cls), name
        assert cls.name == name
        assert (cls.__doc__ or inspect.getmodule(cls).__doc__ or "").strip(), name  # documented


def test_every_modality_is_declared_in_full_and_gets_a_contribution_group() -> None:
    assert next(iter(modalities.REGISTRY)) == catalogue.FIRST["modalities"]
    for name, modality in modalities.REGISTRY.items():
        assert isinstance(modality, Modality) and modality.schema.name == name
        assert modality.time_column in modality.schema.names and modality.profile_column in modality.schema.names
        assert set(modality.id_columns.values()) <= {"user", "item"}
        assert name in GROUPS
    assert CONTRIBUTIONS == [f"contribution_{g}" for g in CONTRIBUTION_GROUPS]


def test_every_model_credits_a_known_group_and_needs_registered_modalities() -> None:
    for name, cls in models.REGISTRY.items():
        assert cls.group in GROUPS, name
        assert catalogue.FIRST["modalities"] in cls.modalities and set(cls.modalities) <= set(modalities.REGISTRY)


def test_a_module_that_does_not_define_its_implementation_is_refused(monkeypatch) -> None:
    # tuning.py exists in the models package but defines no model named "tuning"
    monkeypatch.setattr(catalogue, "names", lambda point: ("tuning",))
    with pytest.raises(TypeError, match=r"fusion_tasks.models.tuning must define exactly one BaseRecommender "
                                        r"named 'tuning'"):
        catalogue.load("models", BaseRecommender)


def test_framework_modules_and_private_files_are_not_implementations(tmp_path, monkeypatch) -> None:
    package = tmp_path / "models"
    package.mkdir()
    for name in ("base.py", "tuning.py", "_private.py", "mystery.py", "notes.txt"):
        (package / name).write_text("")
    monkeypatch.setattr(catalogue, "PACKAGE", tmp_path)
    assert catalogue.names("models") == ("mystery",)


# the fusion methods' contract, on small pools whose labels follow the first behaviour model -----------------
def _pool(seed: int, n_users: int = 100, per_user: int = 20, cap: int = 10):
    import pandas as pd

    from fusion_tasks.fusion.base import FoldPool
    from fusion_tasks.fusion.candidates import CONTEXT_FEATURES, RAW_FEATURES

    rng = np.random.default_rng(seed)
    n = n_users * per_user
    pool = pd.DataFrame({"user_idx": np.repeat(np.arange(n_users), per_user).astype("int32"),
                         "item_idx": np.tile(np.arange(per_user), n_users).astype("int32")})
    for m in models.REGISTRY:
        z = rng.standard_normal(n).astype("float32")
        rank = pool.assign(z=z).groupby("user_idx")["z"].rank(ascending=False, method="first").to_numpy()
        pool[f"z_{m}"], pool[f"rank_{m}"], pool[f"avail_{m}"] = z, np.minimum(rank, cap + 1).astype("int32"), 1
    for column in (*CONTEXT_FEATURES, *RAW_FEATURES):
        pool[column] = rng.integers(0, 4, n).astype("float32")
    signal = pool[f"z_{next(iter(models.REGISTRY))}"].to_numpy("float64")
    pool["label"] = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * signal - 3.0)))).astype("int8")
    relevant = pool.groupby("user_idx")["label"].sum()
    pool = pool[pool["user_idx"].isin(relevant.index[relevant > 0])].reset_index(drop=True)
    return FoldPool(f"fold{seed}", pool, relevant[relevant > 0])


@pytest.fixture(scope="module")
def fitted_methods() -> dict:
    from fusion_tasks.fusion.base import FitInput
    from fusion_tasks.fusion.candidates import context_columns

    data = FitInput(folds=(_pool(1), _pool(2)), models=tuple(models.REGISTRY),
                    context=context_columns(tuple(modalities.REGISTRY)), k=10, seed=7)
    return {name: (cls(), cls().fit(data), _pool(9)) for name, cls in methods.REGISTRY.items()}


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
def test_every_fusion_method_fits_plain_json_and_its_contributions_sum_to_its_scores(name: str,
                                                                                    fitted_methods: dict) -> None:
    method, fitted, held_out = fitted_methods[name]
    assert json.loads(json.dumps(fitted)) == fitted  # plain JSON: no pickle, no numpy
    scores = method.scores(fitted, held_out.pool)
    assert scores.shape == (len(held_out.pool),) and np.isfinite(scores).all()
    parts = method.contributions(fitted, held_out.pool)
    assert list(parts.columns) == CONTRIBUTIONS
    np.testing.assert_allclose(parts.sum(axis=1).to_numpy(), scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
def test_scores_and_contributions_at_once_are_the_same_values_as_each_alone(name: str, fitted_methods: dict) -> None:
    """Publishing asks for both at once (deep fusion then runs its networks once): the table must not change."""
    method, fitted, held_out = fitted_methods[name]
    scores, parts = method.scores_and_contributions(fitted, held_out.pool)
    assert np.array_equal(scores, method.scores(fitted, held_out.pool))
    pd.testing.assert_frame_equal(parts, method.contributions(fitted, held_out.pool), check_exact=True)


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
def test_publishing_scores_a_pool_in_row_blocks_with_the_same_values(name: str, fitted_methods: dict) -> None:
    """Publishing scores the final pool a block of rows at a time (bounded memory): every method scores a row from
    that row alone, so blocks of 7 rows give the whole pool's values (a date's rerun uses the same blocks)."""
    method, fitted, held_out = fitted_methods[name]
    whole_scores, whole_parts = method.scores_and_contributions(fitted, held_out.pool)
    scores, parts = methods.scores_and_contributions(name, {"fitted": fitted}, held_out.pool, rows=7)
    # the same to rounding: a matrix product over fewer rows may sum in another order (deep fusion's networks)
    np.testing.assert_allclose(scores, whole_scores, rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(parts, whole_parts, check_exact=False, rtol=1e-6, atol=1e-9)
