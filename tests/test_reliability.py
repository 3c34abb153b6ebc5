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


def test_pubsub_outages_lose_nothing(stack, tmp_path, monkeypatch):
    """Two Pub/Sub outages of 30 s each in the middle of a run:
    1. the emulator is paused (SIGSTOP): a hung service, calls time out;
    2. the network to it is cut: connections are refused and reset.
    The emulator keeps its state through both, as real Pub/Sub does (killing
    the in-memory emulator would lose what it holds, which real Pub/Sub never
    does). The job's reader waits and says so, the simulator retries its
    publishes, and the reconciliation must pass with nothing missing."""
    from localstack.netcut import CuttableLink

    link = CuttableLink(stack.pubsub.port)
    link.start()
    route = {"PUBSUB_EMULATOR_HOST": link.address}
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", link.address)  # the simulator's publisher
    job = start_job(stack, tmp_path, env=route)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "pubsub-drill", rate=20, seconds=95, seed=9)
    try:
        time.sleep(10)
        stack.pubsub.pause()
        try:
            time.sleep(30)
        finally:
            stack.pubsub.resume()
        assert job.poll() is None, "the job must wait for a hung Pub/Sub, not crash"
        time.sleep(10)
        before_cut = link.connections
        link.cut()
        time.sleep(30)
        assert job.poll() is None, "the job must wait for an unreachable Pub/Sub, not crash"
        link.restore()
        thread.join(timeout=300)
        assert result["stats"].failed == 0
        assert load_to_bigquery(ledger, stack.project, DATASET) > 1500
        outcome = _wait_for_reconciliation(stack, "pubsub-drill", 240)
    finally:
        stop_pid(job.pid, timeout=30)
        link.close()
    assert link.connections > before_cut, "clients reconnected through the restored link"
    log = (tmp_path / "job.log").read_text()
    assert log.count("Pub/Sub reachable again") >= 2, log[-3000:]
    assert "waiting for Pub/Sub" in log
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
    checks = {r.name: r for r in outcome["results"]}
    assert sum(r["failures"] for r in checks["missing"].rows) == 0
