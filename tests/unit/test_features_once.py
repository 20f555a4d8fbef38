"""What every modality builds for an origin is built once per run (by build_training_data) and read back by
every model and by the pools, identical to building it again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from fusion_tasks import modalities
from fusion_tasks.config import RunConfig
from fusion_tasks.storage import DataRoot, read_parquet
from fusion_tasks.synthetic import SyntheticSpec
from fusion_tasks.training_data import TrainingData, load_features


@pytest.fixture(scope="module")
def run(prepared_world) -> tuple[DataRoot, RunConfig]:
    return prepared_world("features", SyntheticSpec(n_days=60, n_users=60, n_items=90), holdout_days=7,
                          validation_days=7, n_folds=2)


def assert_same(stored, built) -> None:
    assert type(stored) is type(built) or (sparse.issparse(stored) and sparse.issparse(built))
    if sparse.issparse(built):
        assert stored.shape == built.shape and stored.dtype == built.dtype and (stored != built).nnz == 0
    elif isinstance(built, np.ndarray):
        assert stored.dtype == built.dtype
        np.testing.assert_array_equal(stored, built)
    elif isinstance(built, pd.DataFrame):
        pd.testing.assert_frame_equal(stored, built)
    else:
        assert stored == built


@pytest.mark.parametrize("origin", ["fold2", "test", "final"])
def test_stored_features_equal_a_fresh_build(run, origin: str) -> None:
    root, config = run
    day = config.as_of_date
    vocab = TrainingData.load(root, config, origin).vocab
    stored = load_features(root.origin_features(day, origin))
    assert set(stored) == set(config.modalities)
    for name in config.modalities:
        built = modalities.get(name).build_features(read_parquet(root.staged(name, day)), vocab,
                                                    config.origins()[origin], config)
        assert type(stored[name]) is type(built) is modalities.get(name).features, name
        for field in dataclasses.fields(built):
            assert_same(getattr(stored[name], field.name), getattr(built, field.name))


def test_loading_an_origin_reads_the_stored_features_only(run, tmp_path) -> None:
    root, config = run
    staged = root.root / "staged"
    staged.rename(tmp_path / "staged")  # nothing to rebuild from
    try:
        data = TrainingData.load(root, config, "test")
    finally:
        (tmp_path / "staged").rename(staged)
    assert data.interactions.nnz > 0 and data.has("content")
