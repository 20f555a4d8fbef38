"""The quality gate: an absolute floor and a tolerance against the last published date."""

from __future__ import annotations

import datetime as dt

import pytest

from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.report import quality_gate
from fusion_tasks.publish import publish
from fusion_tasks.storage import DataRoot, publish_version, write_json

DAY = dt.date(2024, 4, 29)


def _candidate(root: DataRoot, day: dt.date, ndcg: float) -> None:
    write_json(root.fused(day) / "metrics.json",
               {"k": 10, "chosen_method": "stacking", "metrics": {"stacking": {"ndcg": ndcg}}})


def _published(root: DataRoot, day: dt.date, ndcg: float) -> None:
    payload = {"k": 10, "chosen_method": "weighted_sum", "metrics": {"weighted_sum": {"ndcg": ndcg}}}
    publish_version(root, day, {"metrics": lambda folder: write_json(folder / "metrics.json", payload)})


@pytest.fixture
def root(tmp_path) -> DataRoot:
    return DataRoot(tmp_path)


def config(root: DataRoot, day: dt.date = DAY, **kw) -> RunConfig:
    return RunConfig(as_of_date=day, data_root=root.root, **kw)


def test_first_date_passes_above_the_floor(root):
    _candidate(root, DAY, 0.05)
    decision = quality_gate(root, config(root, ndcg_floor=0.01))
    assert decision["passed"] and decision["reason"] is None
    assert "previous_date" not in decision


def test_below_the_floor_fails_with_a_reason(root):
    _candidate(root, DAY, 0.004)
    decision = quality_gate(root, config(root, ndcg_floor=0.005))
    assert not decision["passed"] and decision["kind"] == "floor"
    assert "0.0040" in decision["reason"] and "floor" in decision["reason"]
    with pytest.raises(PermissionError, match="quality gate did not pass"):
        publish(root, config(root, ndcg_floor=0.005))


def test_regression_against_the_last_published_date(root):
    _published(root, DAY - dt.timedelta(days=2), 0.20)
    _published(root, DAY + dt.timedelta(days=1), 0.01)  # a later date is not a reference
    _candidate(root, DAY, 0.14)
    decision = quality_gate(root, config(root, regression_tolerance=0.25))
    assert not decision["passed"] and decision["kind"] == "regression"
    assert decision["previous_date"] == (DAY - dt.timedelta(days=2)).isoformat()
    assert decision["previous_ndcg"] == 0.20


def test_within_tolerance_passes(root):
    _published(root, DAY - dt.timedelta(days=1), 0.20)
    _candidate(root, DAY, 0.16)
    assert quality_gate(root, config(root, regression_tolerance=0.25))["passed"]


# the sentence in the task log ------------------------------------------------------------------------
def test_the_log_sentence_of_a_pass_names_the_numbers_and_the_floor(root):
    from fusion_tasks.gate_text import describe_gate

    _candidate(root, DAY, 0.05)
    sentence = describe_gate(quality_gate(root, config(root, ndcg_floor=0.01)), 10)
    assert sentence == ("quality gate passed: stacking NDCG@10 0.0500 is at or above the floor 0.0100; no date was "
                        "published before, so only the floor applies; publishing")


def test_the_log_sentence_of_a_floor_failure(root):
    from fusion_tasks.gate_text import describe_gate

    _candidate(root, DAY, 0.004)
    sentence = describe_gate(quality_gate(root, config(root, ndcg_floor=0.005)), 10)
    assert sentence.startswith("quality gate failed: stacking NDCG@10 0.0040 is below the floor 0.0050")
    assert sentence.endswith("nothing is published")


def test_the_log_sentence_of_a_regression_names_the_reference_and_the_tolerance(root):
    from fusion_tasks.gate_text import describe_gate

    _published(root, DAY - dt.timedelta(days=2), 0.20)
    _candidate(root, DAY, 0.14)
    sentence = describe_gate(quality_gate(root, config(root, regression_tolerance=0.25)), 10)
    assert sentence == ("quality gate skipped publishing: stacking NDCG@10 0.1400 is at or above the floor 0.0050, "
                        "but the last published date 2024-04-27 had 0.2000, so with regression_tolerance 25% the "
                        "lowest allowed is 0.1500; the previous table stays current")
