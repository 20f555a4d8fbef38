"""The fusion methods are fitted on at most ``MAX_FOLD_USERS`` users of a fold: a seeded sample of the fold's users,
the same at every call, with their pool rows and relevant counts only; a fold with fewer users is whole."""

from __future__ import annotations

import numpy as np

from fusion_tasks import models
from fusion_tasks.fusion import candidates, methods
from fusion_tasks.fusion.candidates import load_pool
from fusion_tasks.synthetic import SyntheticSpec
from fusion_tasks.training_data import load_relevance


def test_a_fold_with_more_users_than_the_cap_is_a_seeded_sample_of_them(prepared_world) -> None:
    root, config = prepared_world("fold-users", SyntheticSpec(n_days=60, n_users=150, n_items=120),
                                  holdout_days=7, validation_days=7, n_folds=2, tune_models=False)
    models.train_model(root, config, "popularity")
    candidates.build_pools(root, config, ["popularity"])
    whole = methods.fold_pools(root, config)  # fewer users than the default cap: every user of every fold
    for fold in whole:
        every = load_relevance(root, config, fold.name).groupby("user_idx").size()
        assert len(fold.n_relevant) > 10 and fold.n_relevant.equals(every)
        assert fold.pool.equals(load_pool(root, config, fold.name))
    sampled = methods.fold_pools(root, config, max_users=10)
    again = methods.fold_pools(root, config, max_users=10)
    for full, part, repeat in zip(whole, sampled, again, strict=True):
        users = part.n_relevant.index.to_numpy()
        assert len(users) == 10 and set(users) <= set(full.n_relevant.index)
        np.testing.assert_array_equal(users, repeat.n_relevant.index.to_numpy())
        np.testing.assert_array_equal(part.n_relevant.to_numpy(), full.n_relevant.loc[users].to_numpy())
        expected = full.pool[full.pool["user_idx"].isin(users)].reset_index(drop=True)
        assert set(part.pool["user_idx"]) <= set(users)
        assert part.pool.equals(expected)
