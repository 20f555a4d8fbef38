"""``make bench-speed``'s DAG section read on a run the DAG made on the shared Airflow (not on a hand-made sample)."""

from __future__ import annotations

import pytest

from bench.speed import DAG_STAGES, FUSION_STAGE, dag_table, measure_runs
from tests.integration.harness import CHEAP_CONF

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stage_spans_of_a_dag_run_on_the_scheduler(airflow):
    # 2024-02-26: a date no other test of the shared instance publishes (they count versions of theirs)
    (spans,) = measure_runs(airflow, {"as_of_date": "2024-02-26", **CHEAP_CONF, "ndcg_floor": 0.0,
                                      "regression_tolerance": 1.0}, 1)
    assert set(spans) == {*DAG_STAGES, "whole run"}  # every stage had a task that ran
    whole = spans["whole run"]
    assert all(0 < spans[stage] <= whole for stage in DAG_STAGES), spans
    # the stages follow one another: together they cover most of the run, and never more than it in sum
    # (tasks start a little after the previous stage ends)
    assert 0.5 * whole < sum(spans[stage] for stage in DAG_STAGES) <= whole, spans
    table = dag_table([spans])
    fusion_row = next(line for line in table if FUSION_STAGE in line)
    assert fusion_row.endswith(f"| {spans[FUSION_STAGE]:.1f} | {spans[FUSION_STAGE] / whole:.1%} |"), fusion_row
    assert table[-1].startswith("| **whole run** |") and table[-1].endswith("| 100.0% |"), table[-1]
