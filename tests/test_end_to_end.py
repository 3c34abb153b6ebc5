"""End to end on the emulators: simulator -> Pub/Sub -> the job on
BundleBasedDirectRunner -> BigQuery + GCS, then the reconciliation, then
proof that each reconciliation check catches what it is meant to catch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from google.cloud import bigquery

from localstack.services import stop_pid
from pipeline.clients import bigquery_client, storage_client
from reconcile.checks import Scope, run_all, wait_until_passed
from simulator.faults import FaultConfig
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import Simulator, make_publisher
from tests.conftest import BUCKET, DATASET, TOPIC, start_job

pytestmark = pytest.mark.stack
RUN_ID = "e2e-test"
PREFIX = f"gs://{BUCKET}/output"


def _job(stack, tmp: Path, *extra: str) -> subprocess.Popen:
    return start_job(stack, tmp, *extra)


def _outcome(stack):
    return run_all(bigquery_client(stack.project), stack.project, DATASET, PREFIX, Scope(RUN_ID))


def _by_name(outcome):
    return {r.name: r for r in outcome["results"]}


@pytest.fixture(scope="module")
def completed_run(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    job = _job(stack, tmp)
    try:
        publisher = make_publisher()
        ledger_path = tmp / "ledger.jsonl"
        ledger = LedgerWriter(ledger_path)
        faults = FaultConfig(late_fraction=0.15, late_min_s=20, late_max_s=40, duplicate_fraction=0.08,
                             duplicate_max_gap_s=20, malformed_fraction=0.05, no_id_fraction=0.03,
                             too_late_fraction=0.03)
        sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, RUN_ID, rate=60,
                        faults=faults, seed=11, time_scale=0.05)
        stats = sim.run(count=240)
        ledger.close()
        assert stats.failed == 0 and stats.published >= 240
        assert load_to_bigquery(ledger_path, stack.project, DATASET) == 240
        outcome = wait_until_passed(bigquery_client(stack.project), stack.project, DATASET, PREFIX, Scope(RUN_ID),
                                    240, keep_waiting=lambda: job.poll() is None)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp / "job.log").read_text()
    return {"outcome": outcome, "stats": stats, "log": log, "metrics": (tmp / "metrics.json")}


def test_everything_arrives_once_where_its_event_time_says(completed_run, stack):
    outcome, stats = completed_run["outcome"], completed_run["stats"]
    failing = {r.name: r.rows for r in outcome["results"] if not r.passed}
    assert not failing, f"{failing}\n{completed_run['log'][-3000:]}"
    checks = _by_name(outcome)
    assert outcome["ledger_events"] == 240
    # The run really exercised every fault.
    assert stats.late and stats.duplicates and stats.malformed and stats.too_late
    assert sum(r["dead_lettered"] for r in checks["malformed"].rows) == stats.malformed
    assert sum(r["producer_duplicates_absorbed"] for r in checks["duplicates"].rows) > 0
    assert 0 < sum(r["beyond_allowed_lateness"] for r in checks["late"].rows) == outcome["ledger_too_late"]
    assert outcome["ledger_too_late"] <= stats.too_late
    # History: order rows are one per status change; the current view picks the latest.
    client = bigquery_client(stack.project)
    rows = list(client.query(
        f"SELECT o.order_id, o.status, c.status AS current_status FROM `{stack.project}.{DATASET}.order_events_dedup` o "
        f"JOIN `{stack.project}.{DATASET}.orders_current` c USING (order_id) "
        f"WHERE o.order_id IN (SELECT order_id FROM `{stack.project}.{DATASET}.order_events_dedup` "
        f"GROUP BY order_id HAVING COUNT(*) > 1)").result())
    assert rows, "some orders must have several status events"
    rank = {"pending": 1, "processing": 2, "shipped": 3, "delivered": 4}
    latest = {}
    for r in rows:
        latest[r.order_id] = max(latest.get(r.order_id, 0), rank[r.status])
        assert rank[r.current_status] == latest[r.order_id] or rank[r.current_status] >= rank[r.status]
    assert "fired window" in completed_run["log"]


def test_each_check_catches_its_fault(completed_run, stack):
    client = bigquery_client(stack.project)
    table = lambda name: f"`{stack.project}.{DATASET}.{name}`"  # noqa: E731
    param = lambda v: bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", v)])  # noqa: E731

    ids = [r.event_id for r in client.query(
        f"SELECT e.event_id FROM {table('order_events')} e JOIN {table('producer_ledger')} l USING (event_id) "
        f"WHERE l.run_id = '{RUN_ID}' AND l.copies = 1 ORDER BY e.event_id LIMIT 2").result()]
    removed, duplicated = ids

    # Remove a row: missing (and the per-minute counts) fail.
    client.query(f"DELETE FROM {table('order_events')} WHERE event_id = @id", job_config=param(removed)).result()
    checks = _by_name(_outcome(stack))
    assert not checks["missing"].passed
    assert removed in [i for r in checks["missing"].rows for i in r["sample_missing_ids"]]
    assert not checks["per_minute"].passed

    # Duplicate a row: the dedup view still holds one, the raw copy is reported as unexplained.
    client.query(f"INSERT INTO {table('order_events')} SELECT * FROM {table('order_events')} WHERE event_id = @id",
                 job_config=param(duplicated)).result()
    dup = _by_name(_outcome(stack))["duplicates"]
    assert dup.passed
    assert sum(r["raw_extra_unexplained"] for r in dup.rows) == 1

    # Drop a dead letter: malformed fails.
    bad = next(r.event_id for r in client.query(
        f"SELECT event_id FROM {table('producer_ledger')} WHERE run_id = '{RUN_ID}' AND malformed LIMIT 1").result())
    client.query(f"DELETE FROM {table('dead_letter')} WHERE event_id = @id", job_config=param(bad)).result()
    assert not _by_name(_outcome(stack))["malformed"].passed

    # Copy a file to another pane name: the files now hold events twice.
    gcs = storage_client(stack.project).bucket(BUCKET)
    blobs = [b for b in gcs.list_blobs(prefix="output/inventory/") if b.name.endswith("0001.json")]
    gcs.copy_blob(blobs[0], gcs, blobs[0].name.replace("0001.json", "0099.json"))
    assert not _by_name(_outcome(stack))["gcs_duplicates"].passed

    # Move a file to another minute folder: misplaced events are found.
    source = next(b for b in gcs.list_blobs(prefix="output/user_activity/") if b.name.endswith(".json"))
    # output/<type>/YYYY/MM/DD/HH/mm/<type>_<yyyyMMddHH><mm><NNNN>.json -> seven minutes later, name kept consistent
    match = re.match(r"(output/user_activity/\d{4}/\d{2}/\d{2}/\d{2}/)(\d{2})/(user_activity_\d{10})\d{2}(\d{4,}\.json)$",
                     source.name)
    minute = f"{(int(match.group(2)) + 7) % 60:02d}"
    target = f"{match.group(1)}{minute}/{match.group(3)}{minute}{match.group(4)}"
    gcs.copy_blob(source, gcs, target)
    source.delete()
    assert not _by_name(_outcome(stack))["gcs_misplaced"].passed


def test_job_refuses_to_start_without_its_resources(stack, tmp_path):
    job = _job(stack, tmp_path, f"--subscription=projects/{stack.project}/subscriptions/nope", "--dataset=missing")
    assert job.wait(timeout=120) == 2
    log = (tmp_path / "job.log").read_text()
    assert "subscriptions/nope does not exist" in log
    assert f"{stack.project}.missing.order_events does not exist" in log
