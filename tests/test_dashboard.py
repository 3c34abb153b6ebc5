"""The live dashboard (python -m dashboard) in a real headless browser on a
dataset of known analytics rows: its cards and charts show those numbers,
a new row appears on the next refresh without reloading the page, a missing
dataset stops the command at once with what to do. The end-to-end run with
the job (tests/test_end_to_end.py) checks it against a real stream."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from common.clients import bigquery_client
from dashboard.process import start, wait_until_serving
from localstack.services import free_port, stop_pid
from provision import ensure_dataset, ensure_tables_api, ensure_views
from schemas.contract import format_timestamp
from tests.browser import chart_traces, chromium, rendered_bars
from tests.helpers import BASE

pytestmark = pytest.mark.stack
DATASET = "dashboard_test"
ROOT = Path(__file__).resolve().parent.parent


def metrics_row(minute_offset: int, event_type: str, events: int, users=None, incarnation="job-2", **more) -> dict:
    minute = BASE + timedelta(minutes=minute_offset)
    final = incarnation == "job-2"  # job-1 was stopped before its minute closed
    row = {"metrics_id": f"{event_type}-{minute_offset}-{incarnation}", "minute": format_timestamp(minute),
           "event_type": event_type, "job_incarnation": incarnation,
           "generation": "g", "version": 1, "is_final": final, "events": events, "unique_users": users,
           "duplicates": more.get("duplicates", 0), "conflicts": more.get("conflicts", 0),
           "dead_letters": more.get("dead_letters", 0),
           "dead_letter_reasons": ([{"reason": "invalid_json", "count": more["dead_letters"]}]
                                   if more.get("dead_letters") else []),
           "late": more.get("late", 0), "far_late": more.get("far_late", 0),
           "emitted_at": format_timestamp(minute + timedelta(minutes=2 if final else 1))}
    for name in ("lag_event", "lag_publish"):
        row.update({f"{name}_p50_ms": 400, f"{name}_p90_ms": 900, f"{name}_p99_ms": 1500})
    return row


ROWS = [
    metrics_row(0, "order", 10, users=8, duplicates=1, late=2),
    metrics_row(0, "user_activity", 40, users=12, conflicts=1),
    metrics_row(0, "inventory", 5),
    metrics_row(0, "unknown", 0, dead_letters=3),
    metrics_row(1, "order", 7, users=7, far_late=1),
    metrics_row(1, "user_activity", 25, users=9, duplicates=2),
    metrics_row(1, "inventory", 3, incarnation="job-1"),
]


@pytest.fixture(scope="module")
def dataset(stack):
    client = bigquery_client(stack.project)
    ensure_dataset(client, stack.project, DATASET, "US")
    ensure_tables_api(client, stack.project, DATASET)
    ensure_views(client, stack.project, DATASET)
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.metrics_per_minute", ROWS, retry=None)
    alert = {"alert_id": "a1", "alert_type": "user_burst", "user_id": "bot-user", "minute": format_timestamp(BASE),
             "threshold": 100, "event_count": 101, "crossing_event_type": "user_activity", "crossing_event_id": "x",
             "crossing_event_time": format_timestamp(BASE), "crossing_publish_time": format_timestamp(BASE),
             "detected_at": format_timestamp(BASE + timedelta(seconds=1))}
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.alerts", [alert], retry=None)
    return client


@pytest.fixture
def page(stack, dataset, tmp_path):
    port = free_port()
    log = tmp_path / "dashboard.log"
    proc = start(stack.env(), stack.project, DATASET, port, log, "--refresh_s=1")
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}/", log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_pid(proc.pid, timeout=10)


def _wait_for(driver, condition, timeout_s: float = 30):
    """Until `condition(driver)` holds; on a timeout, fail with what the page
    says (its status line holds a refresh's error)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"the page did not get there in {timeout_s}s; it shows: "
                    f"{driver.find_element('tag name', 'body').text[:1500]}; browser log: {driver.get_log('browser')}")


def _cards(driver) -> dict:
    ids = ("kpi-events", "kpi-users", "kpi-duplicates", "kpi-conflicts", "kpi-dead-letters", "kpi-late",
           "kpi-far-late", "kpi-alerts")
    return {i: driver.find_element("id", i).text for i in ids}


def test_the_page_shows_the_tables_numbers_and_follows_new_rows(page, dataset, stack, tmp_path):
    with chromium() as driver:
        driver.get(page)
        _wait_for(driver, lambda d: d.find_element("id", "kpi-events").text not in ("", "-"))
        assert _cards(driver) == {"kpi-events": "90", "kpi-users": "12", "kpi-duplicates": "3",
                                  "kpi-conflicts": "1", "kpi-dead-letters": "3", "kpi-late": "2",
                                  "kpi-far-late": "1", "kpi-alerts": "1"}
        events = {t["name"]: t["y"] for t in _wait_for(driver, lambda d: chart_traces(d, "events-chart"))}
        assert events["order"] == [10, 7] and events["user_activity"] == [40, 25] and events["inventory"] == [5, 3]
        assert rendered_bars(driver, "events-chart") >= 5  # drawn as SVG bars, not only data
        users = {t["name"]: t["y"] for t in _wait_for(driver, lambda d: chart_traces(d, "users-chart"))}
        assert users == {"order": [8, 7], "user_activity": [12, 9]}
        lag = {t["name"]: t["y"] for t in _wait_for(driver, lambda d: chart_traces(d, "lag-chart"))}
        assert lag["order p50"] == [400, 400] and lag["order p99"] == [1500, 1500]
        quality = {t["name"]: t["y"] for t in _wait_for(driver, lambda d: chart_traces(d, "quality-chart"))}
        assert quality["dead_letters"] == [3, 0] and quality["duplicates"] == [1, 2]
        assert "bot-user" in driver.find_element("id", "alerts-table").text
        status = driver.find_element("id", "status").text
        assert "newest minute 2025-02-08 13:10 UTC" in status and "1 minute(s) incomplete" in status and "13:10" in status
        assert "0 sessions" in driver.find_element("id", "sessions").text
        # A new minute arrives: the page follows on its next refresh, not reloaded.
        assert not dataset.insert_rows_json(f"{stack.project}.{DATASET}.metrics_per_minute",
                                            [metrics_row(2, "order", 4, users=4)], retry=None)
        _wait_for(driver, lambda d: d.find_element("id", "kpi-events").text == "94")
        events = {t["name"]: t["y"] for t in chart_traces(driver, "events-chart")}
        assert events["order"] == [10, 7, 4]
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_missing_dataset_stops_the_command_with_what_to_do(stack):
    result = subprocess.run([sys.executable, "-m", "dashboard", f"--project={stack.project}", "--dataset=nope",
                             f"--port={free_port()}"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, **stack.env()})
    assert result.returncode == 2
    assert "nope.metrics_per_minute" in result.stderr and "provision" in result.stderr


def test_the_page_reads_the_newest_snapshot_however_slow_the_queries():
    """A background thread refreshes the numbers: a query slower than the
    page's refresh interval no longer starves the page; a failed refresh
    keeps the last numbers and says why."""
    import threading

    from dashboard.app import Snapshots

    calls, answer = [], threading.Semaphore(0)  # each query answers when the test says so

    def load():
        answer.acquire()  # far slower than the interval below
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("BigQuery went away")
        return f"snapshot {len(calls)}"

    snaps = Snapshots(load, refresh_s=0.01).start()
    try:
        assert snaps.latest() == (None, None)
        answer.release()
        assert snaps.latest(wait_s=10, refreshes=1) == ("snapshot 1", None)
        answer.release()
        assert snaps.latest(wait_s=10, refreshes=2) == ("snapshot 1", "refresh failed: RuntimeError: BigQuery went away")
        answer.release()
        assert snaps.latest(wait_s=10, refreshes=3) == ("snapshot 3", None)
    finally:
        snaps.stop()
        answer.release()
