"""The quality benchmark's scoring, ablation, report and plot, on what a real pipeline run wrote."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from bench.quality import report, scoring
from fusion_tasks.config import RunConfig
from fusion_tasks.pipeline import run_all
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

SPEC = SyntheticSpec(n_days=110, n_users=150, n_items=200)
D = SPEC.start + dt.timedelta(days=70)  # 70 days of history, 40 days after D to score against
CONF = {"holdout_days": 14, "validation_days": 14, "n_folds": 3, "ndcg_floor": 0.0, "top_k": 20,
        "candidates_per_model": 50, "regression_tolerance": 1.0}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = DataRoot(tmp_path_factory.mktemp("bench-quality"))
    generate(root, SPEC)
    run_all(RunConfig.from_dict({**CONF, "as_of_date": D.isoformat(), "data_root": str(root.root)}))
    events = scoring.all_behaviour(root, SPEC.end)
    result = scoring.evaluate_date(root, D, CONF, events)
    return {"root": root, "result": result}


def test_the_ablation_fuses_behaviour_alone_and_with_each_other_registered_modality() -> None:
    from fusion_tasks.modalities import REGISTRY

    others = [m for m in REGISTRY if m != "behavior"]
    assert scoring.ABLATIONS == {"behavior only": ("behavior",), **{f"behavior + {m}": ("behavior", m) for m in others}}
    assert {"behavior + content", "behavior + social"} <= set(scoring.ABLATIONS)


def test_the_ablation_refits_the_fusion_on_fewer_modalities(evaluated: dict) -> None:
    info = evaluated["result"]["info"]
    lists = set(evaluated["result"]["per_user"]["list"])
    expected = {f"ablation: {label}" for label in (*scoring.ABLATIONS, "all modalities", "all, no deep fusion")}
    assert expected <= lists
    assert info["ablation"]["all modalities"]["chosen"] == info["chosen_method"]
    assert info["ablation"]["all, no deep fusion"]["chosen"] in ("weighted_sum", "stacking")
    for label in scoring.ABLATIONS:
        assert set(info["ablation"][label]["cv_ndcg"]) == {"weighted_sum", "stacking", "deep_fusion"}


def test_all_modalities_reproduces_the_published_list(evaluated: dict) -> None:
    frame = evaluated["result"]["per_user"]
    main = frame.loc[(frame["variant"] == "main") & (frame["k"] == 10)]
    wide = main.pivot_table(index="user", columns="list", values="ndcg")
    pd.testing.assert_series_equal(wide["ablation: all modalities"], wide["published (chosen fusion)"],
                                   check_names=False)


def test_the_report_has_the_ablation_table_the_time_aware_baseline_and_the_plot(evaluated: dict, tmp_path) -> None:
    result = scoring.aggregate([evaluated["result"]], CONF, [D], {"runs": {}})
    assert set(result["ablation"]) >= {"behavior only", "behavior + content", "behavior + social"}
    assert result["ablation"]["all modalities"]["diff_vs_all"] == 0.0
    assert "baseline: DecayedPop" in result["tables"]["main@10"]
    path = report.plot_per_origin(result, tmp_path / "plot.png")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    result["plot"] = "bench/plots/quality_ndcg_per_origin.png"
    text = report.markdown(result)
    assert "## Modality ablation" in text and "| behavior only |" in text
    assert "![NDCG@10 per origin and list](bench/plots/quality_ndcg_per_origin.png)" in text


def test_an_empty_list_passes_the_candidate_rule(evaluated: dict) -> None:
    """A model with nothing to say at D (a modality with no data) has an empty list: it is scored as empty."""
    config = RunConfig.from_dict({**CONF, "as_of_date": D.isoformat(), "data_root": str(evaluated["root"].root)})
    ctx = scoring.context(evaluated["root"], config, "final")
    empty = pd.DataFrame({"user_id": pd.Series(dtype=str), "item_id": pd.Series(dtype=str),
                          "rank": pd.Series(dtype="int64")})
    kept, dropped = scoring.enforce_candidates(ctx, empty, 10)
    assert kept.empty and dropped == 0
