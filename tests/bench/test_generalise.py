"""The generalisation benchmark scores what the pipeline wrote on a generated world, and reports it per world."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import generalise
from fusion_tasks.synthetic import REGIMES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("generalise")
    return generalise.evaluate_world(base, "content + social", days=80, n_dates=1, horizon=20, runner="pipeline",
                                     n_users=150, n_items=200)


def test_every_regime_is_a_world_beside_shapes_other_than_ciao() -> None:
    assert {f"regime: {name}" for name in REGIMES} <= set(generalise.WORLDS)
    assert {"dense", "sparse fast-moving"} <= set(generalise.WORLDS)


def test_a_world_is_scored_at_its_origin_on_the_horizon_after_it(result: dict) -> None:
    assert result["horizon_days"] == 20
    assert len(result["dates"]) == 1 and len(result["per_date"]) == 1
    lists = set(result["tables"]["main@10"])
    assert {"published (chosen fusion)", "fusion: stacking", "ablation: behavior only"} <= lists
    assert any(name.startswith("baseline: ") for name in lists)
    assert any(name.startswith("base: ") for name in lists)


def test_the_report_shows_the_published_list_against_the_best_others(result: dict) -> None:
    args = argparse.Namespace(days=80, dates=1, horizon=20, runner="pipeline")
    text = generalise.markdown({"content + social": result}, args, 60.0)
    row = next(line for line in text.splitlines() if line.startswith("| content + social |"))
    published = result["comparisons"]["published vs best single base model"]
    assert f"| {published['fusion_ndcg']:.4f} |" in row
    assert published["other"].removeprefix("base: ") in row
    assert f"{published['mean_diff']:+.4f} ± {published['se_diff']:.4f}" in row
    chosen = result["per_date"][0]["chosen_method"]
    assert chosen in row
    table = text.split("## NDCG@10 of every list")[1]
    assert f"| published (chosen fusion) | {result['tables']['main@10']['published (chosen fusion)']['ndcg']:.4f} |" \
        in table


def test_an_unknown_world_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        generalise.main(["--worlds", "mars", "--out", str(Path("/nonexistent/x.md"))])
    assert "unknown world(s) ['mars']; known: ['mixed'" in capsys.readouterr().err
