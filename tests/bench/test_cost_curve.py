"""The cost-curve benchmark: its scaled worlds are valid landing data, and its table and plot come from real runs."""

import math

import pandas as pd
import pytest

from bench import cost_curve
from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import REGISTRY
from fusion_tasks.storage import DataRoot


def test_a_scaled_world_is_valid_landing_data_of_the_announced_size(tmp_path):
    world = cost_curve.generate_scaled(tmp_path, 20_000)
    assert (world["users"], world["items"]) == cost_curve.scaled_sizes(20_000)
    assert cost_curve.scaled_sizes(cost_curve.BASE_EVENTS) == (cost_curve.BASE_USERS, cost_curve.BASE_ITEMS)
    root = DataRoot(tmp_path)
    config = RunConfig(as_of_date=cost_curve.START + pd.Timedelta(days=cost_curve.DAYS - 1), data_root=tmp_path)
    staged = {name: REGISTRY[name].extract(root, config) for name in ("behavior", "content", "social")}
    assert staged["behavior"]["rows_quarantined"] <= 0.001 * world["events"]
    assert staged["behavior"]["rows_staged"] >= 0.999 * world["events"]
    assert staged["content"]["rows_staged"] == world["items"]
    assert staged["social"]["rows_staged"] == world["ties"] and staged["social"]["rows_quarantined"] == 0


def test_the_exponent_is_the_slope_on_log_axes():
    events = [1e5, 1e6, 1e7]
    assert cost_curve.exponent(events, [3 * e ** 1.5 for e in events]) == pytest.approx(1.5)
    assert math.isnan(cost_curve.exponent(events, [0.0, 0.0, 2.0]))


def test_the_curve_times_every_stage_of_real_runs_and_draws_them(tmp_path):
    out, plot = tmp_path / "curve.md", tmp_path / "curve.png"
    assert cost_curve.main(["--events", "10000", "20000", "--no-anchors", "--out", str(out), "--plot", str(plot)]) == 0
    text = out.read_text()
    labels = [label for label, _, _ in cost_curve.stages({**cost_curve.CONFIG, "as_of_date": "2024-12-30"})]
    assert {"extract_behavior", "train_als", "score_candidates", "fit_weighted_sum",
            "publish_recommendations"} <= set(labels)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for label in [*labels, "whole run"]:
        cells = rows[label].strip("| ").split(" | ")
        assert "–" not in cells[:-3], label  # every world's costs; the last three are the exponents
        assert float(cells[1].strip("*")) >= 0 and float(cells[4].strip("*")) >= 0, label  # CPU s of each world
    assert math.isfinite(float(rows["whole run"].strip("| ").split(" | ")[-3]))
    assert plot.stat().st_size > 10_000
