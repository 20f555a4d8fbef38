"""Hand-computed known answers for ``fusion_tasks.evaluation.metrics``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fusion_tasks.evaluation.metrics import METRICS, evaluate, per_user_metrics, summarise


def recs(rows: list[tuple[str, str, int]], names: tuple[str, str] = ("user_id", "item_id")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*names, "rank"])


def rel(rows: list[tuple[str, str]], names: tuple[str, str] = ("user_id", "item_id")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(names))


def by_user(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    return frame.set_index("user").to_dict(orient="index")


# user A: relevant {a, c}, list [a, b, c] at k=3
A_EXPECTED = {
    "precision": 2 / 3,
    "recall": 1.0,
    "f1": 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0),  # 0.8
    "ndcg": (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)),
    "map": (1 + 2 / 3) / 2,
    "hit_rate": 1.0,
}


def test_single_user_known_answer() -> None:
    out = by_user(per_user_metrics(recs([("A", "a", 1), ("A", "b", 2), ("A", "c", 3)]),
                                   rel([("A", "a"), ("A", "c")]), k=3))
    assert set(out) == {"A"}
    for name, value in A_EXPECTED.items():
        assert out["A"][name] == pytest.approx(value), name
    assert A_EXPECTED["f1"] == pytest.approx(0.8)


def test_user_with_nothing_recommended_counts_as_zero_and_means_include_them() -> None:
    recommendations = recs([("A", "a", 1), ("A", "b", 2), ("A", "c", 3),
                            ("Z", "a", 1)])  # Z did nothing in the window: not evaluated
    relevant = rel([("A", "a"), ("A", "c"), ("B", "x")])
    per_user = per_user_metrics(recommendations, relevant, k=3)
    out = by_user(per_user)
    assert set(out) == {"A", "B"}
    assert all(out["B"][m] == 0.0 for m in METRICS)
    assert not per_user[list(METRICS)].isna().any().any()

    summary = summarise(per_user, recommendations, catalogue_size=10, k=3)
    assert summary["n_users"] == 2
    assert summary["k"] == 3
    for name, value in A_EXPECTED.items():
        assert summary[name] == pytest.approx(value / 2), name
        # standard error of the mean of [v, 0]: std(ddof=1) = v / sqrt(2), divided by sqrt(2) -> v / 2
        assert summary[f"{name}_se"] == pytest.approx(value / 2), name
    # coverage: distinct recommended items {a, b, c} over the catalogue, counting every user's list
    assert summary["coverage"] == pytest.approx(3 / 10)


def test_everything_empty_recommendations() -> None:
    empty = pd.DataFrame({"user_id": pd.Series([], dtype=str), "item_id": pd.Series([], dtype=str),
                          "rank": pd.Series([], dtype="int64")})
    summary = evaluate(empty, rel([("A", "a"), ("B", "b")]), catalogue_size=5, k=5)
    assert summary["n_users"] == 2
    for name in METRICS:
        assert summary[name] == 0.0
        assert summary[f"{name}_se"] == 0.0
    assert summary["coverage"] == 0.0


def test_k_cut_off_ignores_ranks_beyond_k() -> None:
    recommendations = recs([("A", "b", 1), ("A", "a", 2), ("A", "c", 3)])
    relevant = rel([("A", "a")])
    at1 = by_user(per_user_metrics(recommendations, relevant, k=1))["A"]
    assert at1 == pytest.approx({m: 0.0 for m in METRICS})
    at2 = by_user(per_user_metrics(recommendations, relevant, k=2))["A"]
    assert at2["precision"] == pytest.approx(1 / 2)
    assert at2["recall"] == pytest.approx(1.0)
    assert at2["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert at2["ndcg"] == pytest.approx(1 / math.log2(3))
    assert at2["map"] == pytest.approx(1 / 2)
    assert at2["hit_rate"] == 1.0
    # coverage also only counts ranks <= k
    assert evaluate(recommendations, relevant, catalogue_size=4, k=1)["coverage"] == pytest.approx(1 / 4)
    assert evaluate(recommendations, relevant, catalogue_size=4, k=3)["coverage"] == pytest.approx(3 / 4)


def test_ideal_dcg_and_map_are_capped_at_k() -> None:
    # five relevant items, k = 2, both slots hit: a perfect list at k=2
    relevant = rel([("A", f"r{j}") for j in range(5)])
    out = by_user(per_user_metrics(recs([("A", "r3", 1), ("A", "r0", 2)]), relevant, k=2))["A"]
    assert out["ndcg"] == pytest.approx(1.0)
    assert out["map"] == pytest.approx(1.0)
    assert out["precision"] == pytest.approx(1.0)
    assert out["recall"] == pytest.approx(2 / 5)
    assert out["f1"] == pytest.approx(2 * 1.0 * 0.4 / 1.4)


def test_ndcg_and_ap_depend_on_position() -> None:
    relevant = rel([("A", "a")])
    first = by_user(per_user_metrics(recs([("A", "a", 1), ("A", "b", 2), ("A", "c", 3)]), relevant, k=3))["A"]
    last = by_user(per_user_metrics(recs([("A", "b", 1), ("A", "c", 2), ("A", "a", 3)]), relevant, k=3))["A"]
    assert first["ndcg"] == pytest.approx(1.0)
    assert last["ndcg"] == pytest.approx(1 / math.log2(4))  # 0.5
    assert first["map"] == pytest.approx(1.0)
    assert last["map"] == pytest.approx(1 / 3)
    assert first["precision"] == last["precision"] == pytest.approx(1 / 3)


def test_map_known_answer_two_of_four() -> None:
    # relevant {a, d, e}, list [x, a, y, d] at k=4: hits at ranks 2 and 4
    out = by_user(per_user_metrics(recs([("A", "x", 1), ("A", "a", 2), ("A", "y", 3), ("A", "d", 4)]),
                                   rel([("A", "a"), ("A", "d"), ("A", "e")]), k=4))["A"]
    assert out["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert out["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5))
                                        / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert out["precision"] == pytest.approx(2 / 4)
    assert out["recall"] == pytest.approx(2 / 3)


def test_duplicate_relevant_rows_count_once_and_idx_columns_work() -> None:
    recommendations = recs([(0, 10, 1), (0, 11, 2)], names=("user_idx", "item_idx"))
    relevant = rel([(0, 10), (0, 10), (0, 12)], names=("user_idx", "item_idx"))
    out = by_user(per_user_metrics(recommendations, relevant, k=2))[0]
    assert out["recall"] == pytest.approx(1 / 2)
    assert out["precision"] == pytest.approx(1 / 2)
    assert out["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_standard_error_known_answer_three_users() -> None:
    # precision@1 per user: 1, 0, 1 -> mean 2/3, se = std([1,0,1], ddof=1) / sqrt(3)
    recommendations = recs([("A", "a", 1), ("B", "x", 1), ("C", "c", 1)])
    relevant = rel([("A", "a"), ("B", "b"), ("C", "c")])
    summary = evaluate(recommendations, relevant, catalogue_size=100, k=1)
    assert summary["precision"] == pytest.approx(2 / 3)
    assert summary["precision_se"] == pytest.approx(np.std([1, 0, 1], ddof=1) / np.sqrt(3))
    assert summary["hit_rate"] == pytest.approx(2 / 3)
    assert summary["coverage"] == pytest.approx(3 / 100)


def test_single_user_has_zero_standard_error() -> None:
    summary = evaluate(recs([("A", "a", 1)]), rel([("A", "a")]), catalogue_size=1, k=1)
    assert summary["n_users"] == 1
    assert summary["ndcg"] == 1.0
    assert summary["ndcg_se"] == 0.0
    assert summary["coverage"] == 1.0
