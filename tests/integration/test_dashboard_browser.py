"""The dashboard as a user sees it: a real api-server and scheduler publish two dates, headless Chromium logs in
through Airflow's login form, opens *fusionrec* from the navigation and reads the published numbers off the
page (not dashes), with no console errors. The screenshot it takes is the README's (``docs/dashboard.png``,
rewritten when ``FUSIONREC_WRITE_SCREENSHOT=1``).

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by Playwright's Python package.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import CHEAP_CONF, DAG_ID, AirflowInstance

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
SCREENSHOT = PROJECT / "docs" / "dashboard.png"
CHROMIUM = os.environ.get("FUSIONREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DAYS = (dt.date(2024, 2, 25), dt.date(2024, 2, 27))
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"


def _fmt(value: float | int | None, digits: int | None = 4) -> str:
    """The page's number format (dashboard.js ``fmt``)."""
    if value is None:
        return "–"
    if isinstance(value, int) and digits is None:
        return f"{value:,}"
    return f"{value:.{4 if digits is None else digits}f}"


@pytest.fixture(scope="module")
def published(airflow: AirflowInstance) -> dict[str, Any]:
    """Two dates triggered through the REST API (as the UI's form does) and run by the scheduler."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    runs = {}
    for day in DAYS:
        response = airflow.api("POST", RUNS, json={"logical_date": None,
                                                    "conf": {"as_of_date": day.isoformat(), **CHEAP_CONF}})
        assert response.status_code == 200, response.text
        runs[day] = response.json()
    finished, _ = airflow.wait_for_runs({r["dag_run_id"] for r in runs.values()})
    assert all(r["state"] == "success" for r in finished), airflow.failure_report(finished)
    return runs


def test_triggered_runs_are_named_after_the_date_they_compute(airflow, published):
    for day, run in published.items():
        assert run["dag_run_id"].startswith(f"as_of_{day.isoformat()}__manual__")
        assert run["note"] == f"as of {day.isoformat()}"
    listed = {r["dag_run_id"]: r for r in airflow.dag_runs()}
    assert all(listed[r["dag_run_id"]]["note"] == f"as of {d}" for d, r in published.items())


def test_a_misspelled_conf_key_is_refused_at_trigger_time(airflow, published):
    before = {r["dag_run_id"] for r in airflow.dag_runs()}
    response = airflow.api("POST", RUNS, json={"logical_date": None,
                                               "conf": {"as_of_date": DAYS[0].isoformat(), "top_kk": 5}})
    assert response.status_code == 400, response.text
    assert "'top_kk' (did you mean 'top_k'?)" in response.json()["detail"]
    assert {r["dag_run_id"] for r in airflow.dag_runs()} == before


def test_the_dashboard_shows_the_published_numbers_in_the_airflow_ui(airflow, published, tmp_path):
    from playwright.sync_api import sync_playwright

    from fusion_tasks.storage import DataRoot

    root = DataRoot(airflow.data_root)
    dates = root.published_dates("metrics")
    assert set(DAYS) <= set(dates)
    reports = {day: root.read_published_metrics(day) for day in dates}
    latest = reports[dates[-1]]
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="fusionrec-chromium-", dir=tmp_path), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1300, "height": 3100})
        try:
            page = browser.new_page()
            page.goto(f"{airflow.url}/")
            page.wait_for_url("**/auth/login**", timeout=60_000)  # Airflow's login comes first
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(airflow.password())
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)

            # from here on, any console error or uncaught exception fails the test
            page.on("console", lambda m: problems.append(f"console {m.text} at {m.location}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda err: problems.append(f"page error {err}"))
            page.get_by_role("link", name="fusionrec").first.click()  # the entry in the navigation
            page.wait_for_url("**/plugin/fusionrec", timeout=60_000)
            iframe = page.locator("iframe")
            iframe.wait_for(timeout=60_000)
            frame = _dashboard_frame(page, f"{airflow.url}/fusionrec/")
            frame.wait_for_function("window.fusionrec && window.fusionrec.ready", timeout=60_000)

            _check_quality(frame, reports)
            _check_decisions(frame, reports)
            _check_shares_segments_quarantine(frame, reports, latest, dates[-1])
            _check_canvases_are_drawn(frame)

            page.wait_for_timeout(500)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
            if os.environ.get("FUSIONREC_WRITE_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()
    assert problems == []


def _dashboard_frame(page, url: str):
    """The iframe the UI opened for the external view (its href, resolved against the UI's base URL)."""
    for _ in range(120):
        frames = [f for f in page.frames if f is not page.main_frame and f.url == url]
        if frames:
            return frames[0]
        page.wait_for_timeout(500)
    raise AssertionError(f"no frame at {url} among {[f.url for f in page.frames]}")


def _cell(frame, table: str, name: str, date: str) -> str:
    return frame.locator(f'#{table} tr[data-name="{name}"] td[data-date="{date}"]').inner_text()


def _check_quality(frame, reports: dict[dt.date, dict]) -> None:
    names = list(dict.fromkeys(n for r in reports.values() for n in r["metrics"]))
    shown = list(reports)[-8:]  # the value table shows the latest 8 dates
    for metric, label in (("ndcg", "NDCG@K"), ("recall", "Recall@K"), ("hit_rate", "Hit rate@K"),
                          ("coverage", "Coverage@K")):
        frame.select_option("#metric", metric)
        assert frame.locator("#quality-table caption").inner_text() == f"{label} by date"
        for day in shown:
            for name in names:
                value = reports[day]["metrics"][name][metric]
                assert _cell(frame, "quality-table", name, day.isoformat()) == _fmt(value), (metric, name, day)
        # the chart holds the same numbers: x = the dates, one series per model and method
        data = frame.evaluate("window.fusionrec.charts.quality.data")
        labels = frame.evaluate("window.fusionrec.charts.quality.series.map(s => s.label)")
        assert data[0] == [dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp() for d in reports]
        assert sorted(labels[1:]) == sorted(names)
        for label, values in zip(labels[1:], data[1:], strict=True):
            assert values == pytest.approx([reports[d]["metrics"][label][metric] for d in reports])
    frame.select_option("#metric", "ndcg")
    # the legend shows the latest date's values next to each name
    legend = frame.locator("#quality-chart .u-legend").inner_text()
    last = list(reports.values())[-1]
    for name in names:
        assert f"{name}{_fmt(last['metrics'][name]['ndcg'])}" in legend.replace(":", ""), (name, legend)
    table = frame.locator("#quality-table").inner_text()
    assert "–" not in table


def _check_decisions(frame, reports: dict[dt.date, dict]) -> None:
    for day, report in reports.items():
        row = frame.locator(f'#decisions-table tr[data-date="{day.isoformat()}"]')
        assert row.locator("td.chosen").inner_text() == report["chosen_method"]
        assert row.locator("td.ndcg").inner_text() == _fmt(report["gate"]["ndcg"])
        assert row.locator("td.passed").inner_text() == "passed"
        sentence = row.locator("td.sentence").inner_text()
        assert sentence.startswith(f"quality gate passed: {report['chosen_method']} NDCG@{report['k']} "
                                   f"{report['gate']['ndcg']:.4f}")


def _check_shares_segments_quarantine(frame, reports: dict[dt.date, dict], latest: dict, day: dt.date) -> None:
    for date, report in list(reports.items())[-8:]:
        for group, share in report["contribution_share"].items():
            assert _cell(frame, "share-table", group, date.isoformat()) == _fmt(share, 3), (group, date)
        for modality, counts in report["extraction"].items():
            assert _cell(frame, "quarantine-table", modality, date.isoformat()) == _fmt(counts["rows_quarantined"],
                                                                                      None)
    frame.select_option("#segment-date", day.isoformat())
    for segment, table in latest["segments"].items():
        for name, values in table.items():
            row = frame.locator(f'table[data-segment="{segment}"] tr[data-name="{name}"]')
            assert row.locator('td[data-metric="ndcg"]').inner_text() == _fmt(values["ndcg"]), (segment, name)
            assert row.locator('td[data-metric="n_users"]').inner_text() == _fmt(values["n_users"], None)


def _check_canvases_are_drawn(frame) -> None:
    """Each chart's canvas has drawn pixels (lines, not an empty frame)."""
    counts = frame.evaluate("""() => Object.entries(window.fusionrec.charts).map(([key, plot]) => {
        const ctx = plot.ctx; const {width, height} = ctx.canvas;
        const pixels = ctx.getImageData(0, 0, width, height).data;
        let drawn = 0; for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) drawn++;
        return [key, drawn];
    })""")
    assert {key for key, _ in counts} == {"quality", "shares", "quarantine"}
    assert all(drawn > 500 for _, drawn in counts), counts
