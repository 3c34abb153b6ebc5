"""Reliability drills on the emulators: the job is SIGKILLed several times
and recovered by replaying the subscription; BigQuery and Cloud Storage go
away for 30 s in the middle of a run. Each ends with the reconciliation."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from localstack.services import stop_pid
from pipeline.clients import bigquery_client
from reconcile.checks import Scope, wait_until_passed
from simulator.faults import FaultConfig
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import Simulator, make_publisher
from tests.conftest import BUCKET, DATASET, TOPIC, start_job

pytestmark = pytest.mark.stack
FAULTS = FaultConfig(late_fraction=0.10, late_min_s=10, late_max_s=20, duplicate_fraction=0.05,
                     duplicate_max_gap_s=15, malformed_fraction=0.03, no_id_fraction=0.02)


def _simulate_in_background(stack, tmp, run_id, rate, seconds, seed):
    publisher = make_publisher()
    ledger = LedgerWriter(tmp / f"{run_id}.jsonl")
    sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, run_id, rate=rate,
                    faults=FAULTS, seed=seed, time_scale=0.05)
    result = {}

    def run():
        result["stats"] = sim.run(duration_s=seconds)
        ledger.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, tmp / f"{run_id}.jsonl"


def _wait_for_reconciliation(stack, run_id, timeout_s, after_replay=False):
    return wait_until_passed(bigquery_client(stack.project), stack.project, DATASET, f"gs://{BUCKET}/output",
                             Scope(run_id), timeout_s, after_replay)


def _failing(outcome):
    return {r.name: r.rows for r in outcome["results"] if not r.passed}


def test_sigkill_and_replay_lose_nothing(stack, tmp_path):
    checkpoint = tmp_path / "checkpoint.json"
    args = (f"--checkpoint_file={checkpoint}", "--replay_from=auto", "--replay_margin_s=20")
    job = start_job(stack, tmp_path, *args)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "crash-drill", rate=25, seconds=50, seed=5)
    rng = random.Random(7)
    kills = 0
    try:
        for _ in range(3):
            time.sleep(rng.uniform(8, 14))
            os.killpg(job.pid, signal.SIGKILL)  # no cleanup, no ack of in-flight messages
            job.wait(timeout=30)
            kills += 1
            time.sleep(rng.uniform(1, 4))  # down for a moment: messages pile up in Pub/Sub
            job = start_job(stack, tmp_path, *args)
        thread.join(timeout=180)
        assert load_to_bigquery(ledger, stack.project, DATASET) > 1000
        outcome = _wait_for_reconciliation(stack, "crash-drill", 240, after_replay=True)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert kills == 3 and log.count("replaying projects/") == 3
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
    checks = {r.name: r for r in outcome["results"]}
    assert sum(r["failures"] for r in checks["missing"].rows) == 0
    assert sum(r["failures"] for r in checks["duplicates"].rows) == 0  # dedup views: one row per event


def test_bigquery_and_storage_outages_lose_nothing(stack, tmp_path):
    job = start_job(stack, tmp_path)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "outage-drill", rate=20, seconds=75, seed=6)
    try:
        for service in (stack.bigquery, stack.gcs):
            time.sleep(5)
            service.stop()
            time.sleep(30)
            assert job.poll() is None, "the job must wait for the sink, not crash"
            service.start()
        thread.join(timeout=180)
        assert load_to_bigquery(ledger, stack.project, DATASET) > 1000
        outcome = _wait_for_reconciliation(stack, "outage-drill", 240)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
    assert "waiting for BigQuery" in log and "waiting for Cloud Storage" in log


def test_pubsub_outage_loses_nothing(stack, tmp_path):
    """The Pub/Sub emulator keeps everything in memory: stopping it drops its
    topics and backlog, so the drill re-provisions them on restart (real
    Pub/Sub does not forget). The job's reader waits, the simulator retries
    its publishes, and the reconciliation must still pass."""
    from pipeline.provision import ensure_pubsub
    from tests.conftest import SUBSCRIPTION

    from datetime import datetime, timedelta, timezone

    job = start_job(stack, tmp_path)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "pubsub-drill", rate=20, seconds=60, seed=9)
    try:
        time.sleep(10)
        stopped_at = datetime.now(timezone.utc)
        stack.pubsub.stop()
        time.sleep(30)
        assert job.poll() is None, "the job must wait for Pub/Sub, not crash"
        stack.pubsub.start()
        ensure_pubsub(stack.project, TOPIC, SUBSCRIPTION)
        provisioned_at = datetime.now(timezone.utc)
        thread.join(timeout=300)
        assert result["stats"].failed == 0
        assert load_to_bigquery(ledger, stack.project, DATASET) > 900
        outcome = _wait_for_reconciliation(stack, "pubsub-drill", 240)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert "waiting for Pub/Sub" in log
    # The emulator, unlike Pub/Sub, keeps messages only in memory: what it held
    # when stopped (published, not yet pulled) or received between topic and
    # subscription re-creation is gone. Anything else missing is the job's fault.
    failing = _failing(outcome)
    missing_rows = failing.pop("missing", [])
    lost = sum(r["failures"] for r in missing_rows)
    missing = {i for r in missing_rows for i in r["sample_missing_ids"]}
    # The same lost events also fail the checks that look for them elsewhere.
    for name in ("gcs_missing", "per_minute", "late", "gcs_late"):
        assert sum(r["failures"] for r in failing.pop(name, [])) <= max(lost, 0) * 2
    assert not failing, f"{failing}\n{log[-3000:]}"
    from simulator.ledger import aggregate, read_lines

    published = {r["event_id"]: datetime.fromisoformat(r["first_publish_time"]) for r in aggregate(read_lines(ledger))}
    for event_id in missing:
        t = published[event_id]
        assert stopped_at - timedelta(seconds=3) <= t <= provisioned_at, \
            f"{event_id} published at {t} was lost outside the emulator's in-memory window"
    assert lost <= 10
