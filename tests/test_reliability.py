"""Reliability drills on the emulators. Each ends with the whole
reconciliation, with no tolerance flag:

* the job is SIGKILLed 5 times and recovered by replaying the subscription:
  no event lost, none written twice (dedup views, raw rows, files);
* Cloud Storage is down for 70 s, then BigQuery for 5 minutes: every event,
  in time or far late, lands in BigQuery and in its minute folder;
* the job is starved of CPU (stopped 80% of the time): it falls behind the
  watermark, and still every event lands in the folder of its event time;
* Pub/Sub hangs, then is cut off: the reader waits and says so.

These take minutes (marker `drill`): `scripts/test.sh -m "not drill"` skips
them locally; CI runs everything.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from localstack.services import stop_pid
from common.clients import bigquery_client
from reconcile.checks import Scope, query, wait_until_passed
from schemas.contract import TOPIC
from simulator.faults import FaultConfig
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import Simulator, make_publisher
from tests.conftest import Target, own_target, start_job, wait_until_running

pytestmark = [pytest.mark.stack, pytest.mark.drill]
FAULTS = FaultConfig(late_fraction=0.10, late_min_s=10, late_max_s=20, duplicate_fraction=0.05,
                     duplicate_max_gap_s=15, conflict_fraction=0.02, malformed_fraction=0.03,
                     extra_field_fraction=0.02, far_late_fraction=0.02)


def _simulate_in_background(stack, tmp, run_id, rate, seconds, seed, faults=FAULTS):
    publisher = make_publisher()
    ledger = LedgerWriter(tmp / f"{run_id}.jsonl")
    sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, run_id, rate=rate,
                    faults=faults, seed=seed, time_scale=0.05)
    result = {}

    def run():
        result["stats"] = sim.run(duration_s=seconds)
        ledger.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, tmp / f"{run_id}.jsonl"


def _stored_since(stack, target: Target, since: datetime) -> int:
    rows = query(bigquery_client(stack.project),
                 f"SELECT COUNT(*) AS n FROM `{stack.project}.{target.dataset}.all_events` WHERE ingest_time >= @since",
                 {"since": since})
    return rows[0]["n"]


def _wait_for_stored(stack, target: Target, job, since: datetime, at_least: int, timeout_s: float = 180) -> int:
    """Until BigQuery holds `at_least` events the job ingested since `since`:
    the signal that the job is up and keeping up (drills run one at a time,
    so what was ingested since a drill's start is that drill's). Fails at
    once if the job died."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = _stored_since(stack, target, since)
        if count >= at_least:
            return count
        assert job.poll() is None, f"the job exited with {job.returncode}"
        assert time.monotonic() < deadline, f"only {count} of {at_least} events stored within {timeout_s}s"
        time.sleep(0.5)


def _stays_up(job, seconds: float, why: str) -> None:
    """The job must not exit during `seconds` of an outage (returns at once,
    failing, if it does)."""
    with pytest.raises(subprocess.TimeoutExpired):
        job.wait(timeout=seconds)
    assert job.poll() is None, why


def _wait_for_reconciliation(stack, target: Target, run_id, timeout_s, ignore=()):
    """The whole reconciliation, re-run until it passes (but for the checks
    named in `ignore`, which the caller must justify) or the time is up."""
    return wait_until_passed(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                             Scope(run_id), timeout_s, ignore=ignore)


def _failing(outcome, ignore=()):
    return {r.name: [row for row in r.rows if row.get("failures")] or r.notes
            for r in outcome["results"] if not r.passed and r.name not in ignore}


def _file_timings(stack, target: Target, run_start: datetime) -> dict:
    rows = query(bigquery_client(stack.project),
                 f"SELECT timing, COUNT(*) AS files, SUM(lines) AS lines FROM `{stack.project}.{target.dataset}.files_written` "
                 "WHERE written_at >= @start GROUP BY timing", {"start": run_start})
    return {r["timing"]: r["lines"] for r in rows}


# The job's per-minute metrics live in its state, which the local runner keeps in
# memory: a SIGKILL loses what the open minutes counted since their last version
# (Dataflow keeps state through failures). The crash drill holds every other check;
# check 9 is held exact by the end-to-end run and by the drills without kills.
KILLS_LOSE = ("metrics",)


def test_five_sigkills_and_replays_lose_nothing_and_write_nothing_twice(stack, tmp_path):
    target = own_target(stack, "drill-crash")
    checkpoint = tmp_path / "checkpoint.json"
    args = (f"--checkpoint_file={checkpoint}", "--replay_from=auto", "--replay_margin_s=20")
    job = start_job(stack, tmp_path, *args, target=target)
    wait_until_running(job, tmp_path / "job.log")
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "crash-drill", rate=25, seconds=75, seed=5)
    rng = random.Random(7)
    kills = 0
    try:
        for _ in range(5):
            # A random moment once this incarnation has stored a random number of
            # events (a signal, not a sleep): what is in flight differs each time.
            incarnation = datetime.now(timezone.utc)
            _wait_for_stored(stack, target, job, incarnation, at_least=rng.randint(150, 300))
            os.killpg(job.pid, signal.SIGKILL)  # no cleanup, no ack of in-flight messages
            job.wait(timeout=30)
            kills += 1
            job = start_job(stack, tmp_path, *args, target=target)
            wait_until_running(job, tmp_path / "job.log")
        thread.join(timeout=180)
        assert load_to_bigquery(ledger, stack.project, target.dataset) > 1500
        outcome = _wait_for_reconciliation(stack, target, "crash-drill", 300, ignore=KILLS_LOSE)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert kills == 5 and log.count("replaying projects/") == 5
    assert log.count("will not be written again") == 5  # each restart seeded its memory from BigQuery
    assert not _failing(outcome, KILLS_LOSE), f"{_failing(outcome, KILLS_LOSE)}\n{log[-3000:]}"
    checks = {r.name: r for r in outcome["results"]}
    assert sum(r["raw_rows_beyond_published_copies"] for r in checks["duplicates"].rows) == 0
    # The minutes a kill caught open are marked incomplete by the metrics view, and check 9 names them.
    assert any(r["metrics_complete"] is False for r in checks["metrics"].rows) and checks["metrics"].notes
    assert checks["gcs_duplicates"].passed and checks["gcs_layout"].passed
    print(f"\nSIGKILL drill: {kills} kills, {outcome['ledger_events']} ledger events, "
          f"raw extra rows {sum(r['raw_extra_rows'] for r in checks['duplicates'].rows)}, "
          f"files {checks['gcs_layout'].rows[0]['files']}; every check passed")


def test_a_storage_outage_then_a_five_minute_bigquery_outage_lose_nothing(stack, tmp_path):
    """Cloud Storage down for 70 s (a minute's end always falls inside, so a
    file write has to wait), then BigQuery down for 5 minutes, while events
    keep coming at 8/s: every event, in time, late or far late, lands in
    BigQuery and in the folder of its event time."""
    target = own_target(stack, "drill-outage")
    job = start_job(stack, tmp_path, target=target)
    wait_until_running(job, tmp_path / "job.log")
    started = datetime.now(timezone.utc)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "outage-drill", rate=8, seconds=400, seed=6)
    try:
        for service, down_s in ((stack.gcs, 70), (stack.bigquery, 300)):
            # Down once the job has stored 40 more events (it is up and keeping up).
            _wait_for_stored(stack, target, job, started, at_least=_stored_since(stack, target, started) + 40)
            service.stop()
            _stays_up(job, down_s, f"the job must wait for {service.name}, not crash")
            service.start()
        thread.join(timeout=300)
        assert result["stats"].far_late and result["stats"].late
        assert load_to_bigquery(ledger, stack.project, target.dataset) > 3000
        outcome = _wait_for_reconciliation(stack, target, "outage-drill", 420)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
    assert "waiting for Cloud Storage" in log and "waiting for BigQuery" in log
    timings = _file_timings(stack, target, started)
    print(f"\noutage drill: Cloud Storage down 70 s, then BigQuery 300 s; {outcome['ledger_events']} ledger events "
          f"({outcome['ledger_late']} late, {outcome['ledger_far_late']} far late); lines by file timing {timings}; "
          "every check passed")


class Starver:
    """Starves a process group of CPU the way cpulimit does: stopped for
    `stopped_s`, running for `running_s`, over and over."""

    def __init__(self, pgid: int, stopped_s: float = 0.8, running_s: float = 0.2):
        self.pgid, self.stopped_s, self.running_s = pgid, stopped_s, running_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            os.killpg(self.pgid, signal.SIGSTOP)
            self._stop.wait(self.stopped_s)
            os.killpg(self.pgid, signal.SIGCONT)
            self._stop.wait(self.running_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        os.killpg(self.pgid, signal.SIGCONT)


def test_a_cpu_starved_job_still_puts_every_event_in_its_minute_folder(stack, tmp_path):
    """The job runs 20% of the time for 90 s while events arrive at 25/s: it
    falls behind the watermark (the wall clock, for the local reader), so
    most events reach their folder after its minute has closed; every one of
    them must still be there, none elsewhere."""
    target = own_target(stack, "drill-starved")
    job = start_job(stack, tmp_path, target=target)
    wait_until_running(job, tmp_path / "job.log")
    started = datetime.now(timezone.utc)
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "starved-drill", rate=25, seconds=90, seed=8)
    try:
        with Starver(job.pid):
            thread.join(timeout=200)
        assert load_to_bigquery(ledger, stack.project, target.dataset) > 2000
        outcome = _wait_for_reconciliation(stack, target, "starved-drill", 300)
    finally:
        stop_pid(job.pid, timeout=30)
    log = (tmp_path / "job.log").read_text()
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
    timings = _file_timings(stack, target, started)
    lags = sorted(r["lag"] for r in query(
        bigquery_client(stack.project),
        f"SELECT TIMESTAMP_DIFF(e.ingest_time, e.publish_time, MILLISECOND) / 1000 AS lag "
        f"FROM `{stack.project}.{target.dataset}.all_events_dedup` e "
        f"JOIN `{stack.project}.{target.dataset}.producer_ledger` l "
        "USING (event_type, event_id) WHERE l.run_id = 'starved-drill' AND e.publish_time IS NOT NULL"))
    p50, p90 = lags[len(lags) // 2], lags[int(len(lags) * 0.9)]
    assert p90 > 0.5, f"the job was not starved: publish -> ingest p90 {p90:.2f}s"  # unstarved: p99 ~0.3 s
    print(f"\nCPU-starved drill: {outcome['ledger_events']} ledger events; publish -> ingest p50 {p50:.2f}s "
          f"p90 {p90:.2f}s max {lags[-1]:.1f}s; lines by file timing {timings}; every check passed")


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
    target = own_target(stack, "drill-pubsub")
    job = start_job(stack, tmp_path, env=route, target=target)
    wait_until_running(job, tmp_path / "job.log")
    thread, result, ledger = _simulate_in_background(stack, tmp_path, "pubsub-drill", rate=20, seconds=90, seed=9)
    started = datetime.now(timezone.utc)
    try:
        _wait_for_stored(stack, target, job, started, at_least=100)
        stack.pubsub.pause()
        try:
            _stays_up(job, 30, "the job must wait for a hung Pub/Sub, not crash")
        finally:
            stack.pubsub.resume()
        # Cut once the job has stored 100 more events: it is reading again.
        _wait_for_stored(stack, target, job, started, at_least=_stored_since(stack, target, started) + 100)
        before_cut = link.connections
        link.cut()
        try:
            _stays_up(job, 30, "the job must wait for an unreachable Pub/Sub, not crash")
        finally:
            link.restore()
        thread.join(timeout=300)
        assert result["stats"].failed == 0
        assert load_to_bigquery(ledger, stack.project, target.dataset) > 1500
        outcome = _wait_for_reconciliation(stack, target, "pubsub-drill", 300)
    finally:
        stop_pid(job.pid, timeout=30)
        link.close()
    assert link.connections > before_cut, "clients reconnected through the restored link"
    log = (tmp_path / "job.log").read_text()
    assert log.count("Pub/Sub (pulling) reachable again") >= 2, log[-3000:]
    assert "waiting for Pub/Sub" in log
    assert not _failing(outcome), f"{_failing(outcome)}\n{log[-3000:]}"
