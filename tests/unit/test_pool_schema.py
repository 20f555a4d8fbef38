"""Candidate pools have one declared schema, checked when a pool is written and when it is read."""

from __future__ import annotations

import pandas as pd
import pytest

from fusion_tasks.fusion.candidates import check_pool, pool_columns


def pool(models: list[str], labelled: bool) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([1, 2], dtype=t) for c, t in pool_columns(models, labelled).items()})


def test_a_pool_of_the_declared_columns_passes_and_the_schema_names_three_columns_per_model() -> None:
    columns = pool_columns(["als", "social"], labelled=True)
    assert list(columns)[:8] == ["user_idx", "item_idx", "z_als", "rank_als", "avail_als", "z_social", "rank_social",
                                 "avail_social"]
    assert list(columns)[-1] == "label" and "label" not in pool_columns(["als"], labelled=False)
    frame = pool(["als", "social"], labelled=True)
    assert check_pool(frame, ["als", "social"], True, "x") is frame


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.drop(columns="rank_als"), r"the pool of fold1: pool columns differ .*missing \['rank_als'\]"),
    (lambda p: p.assign(extra=1), r"unexpected \['extra'\]"),
    (lambda p: p.astype({"z_als": "float64"}), "pool column z_als is float64, the schema says float32"),
    (lambda p: p.assign(user_ties=[1.0, None]).astype({"user_ties": "float32"}), r"missing values in \['user_ties'\]"),
])
def test_a_pool_that_breaks_the_schema_is_refused_naming_the_column(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_pool(change(pool(["als"], labelled=True)), ["als"], True, "the pool of fold1")
