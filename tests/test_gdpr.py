"""GDPR erasure end to end on the emulators (python -m gdpr): after a run with
every fault, one user and one customer are erased; no row, dead letter,
conflict, ledger entry or file line names them any more, the audit rows
exist and say what was removed without saying whom, the reconciliation
still passes for everyone else, and a later event of the erased user is
dropped by the running job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from common.clients import bigquery_client, publisher_client
from localstack.services import stop_pid
from reconcile.checks import Scope, query, run_all, wait_until_passed
from schemas.contract import TOPIC
from simulator.faults import FaultConfig
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import Simulator, make_publisher
from tests.conftest import own_target, start_job, wait_until_running
from tests.helpers import activity

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "gdpr-run"
LATENESS = ("--allowed_lateness_s=0", "--erasure_refresh_s=5")  # folders close at their minute's end


def _gdpr(stack, target, *args: str, settle_s: int = 10) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gdpr", *args, f"--project={stack.project}",
                           f"--dataset={target.dataset}", f"--output-prefix={target.prefix}",
                           "--allowed-lateness-s=0", f"--settle-s={settle_s}"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL, env={**os.environ, **stack.env()})


def _erase(stack, target, flag: str, subject: str, first_settle_s: int = 10) -> str:
    """Erase until nothing is pending: a folder the job may still add to is
    left by a run, and the next run, once that folder is closed, finishes."""
    result = _gdpr(stack, target, "erase", f"{flag}={subject}", settle_s=first_settle_s)
    request = result.stdout.strip().splitlines()[-1]
    if first_settle_s > 3600:  # every folder counted as open: the run must say pending, and leave the files
        assert result.returncode == 3 and "PENDING" in result.stdout, result.stdout + result.stderr
        assert _mentions(stack, target, subject) == {"files": _mentions(stack, target, subject).get("files", -1)}
        result = _gdpr(stack, target, "erase", f"{flag}={subject}", f"--request-id={request}")
    while result.returncode == 3:  # pending: wait until the last open folder closes, then run it again
        minutes = [datetime.fromisoformat(m) for _, m in json.loads(
            query(bigquery_client(stack.project), f"SELECT details FROM `{stack.project}.{target.dataset}.erasure_log` "
                  "WHERE request_id = @r AND step = 'pending' ORDER BY logged_at DESC LIMIT 1",
                  {"r": request})[0]["details"])["folders"]]
        closes = max(minutes) + timedelta(minutes=1, seconds=0 + 10)
        time.sleep(max(0.0, (closes - datetime.now(timezone.utc)).total_seconds()) + 1)  # until that moment
        result = _gdpr(stack, target, "erase", f"{flag}={subject}", f"--request-id={request}")
    assert result.returncode == 0, result.stdout + result.stderr
    return request


def _mentions(stack, target, subject: str) -> dict:
    """Every place the subject's id still appears: table rows (any column, as
    text) and file lines."""
    client = bigquery_client(stack.project)
    found = {}
    for table in ("order_events", "user_activity_events", "dead_letter", "conflicts", "producer_ledger", "alerts",
                  "user_sessions", "erasure_log", "metrics_per_minute", "files_written", "dead_letter_replays"):
        rows = query(client, f"SELECT * FROM `{stack.project}.{target.dataset}.{table}`")
        n = sum(1 for row in rows if subject in json.dumps(row, default=str))
        if n:
            found[table] = n
    root = Path(stack.gcs_root) / target.bucket
    lines = sum(1 for path in root.rglob("*.json") for line in path.read_bytes().splitlines()
                if subject.encode() in line)
    if lines:
        found["files"] = lines
    return found


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gdpr")
    target = own_target(stack, "gdpr")
    job = start_job(stack, tmp, *LATENESS, target=target)
    wait_until_running(job, tmp / "job.log")
    publisher = make_publisher()
    ledger = LedgerWriter(tmp / "ledger.jsonl")
    faults = FaultConfig(late_fraction=0, duplicate_fraction=0.1, conflict_fraction=0.05, malformed_fraction=0.1,
                         extra_field_fraction=0.05)
    sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, RUN_ID, rate=60, faults=faults,
                    seed=21, time_scale=0.02)
    stats = sim.run(count=240)
    ledger.close()
    load_to_bigquery(tmp / "ledger.jsonl", stack.project, target.dataset)
    outcome = wait_until_passed(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                                Scope(RUN_ID, allowed_lateness_s=0), 240, keep_waiting=lambda: job.poll() is None)
    assert all(r.passed for r in outcome["results"]), [(r.name, r.rows) for r in outcome["results"] if not r.passed]
    yield {"stack": stack, "target": target, "job": job, "tmp": tmp, "stats": stats}
    stop_pid(job.pid, timeout=30)


def _busiest(stack, target, event_type: str) -> str:
    """The run's user (or customer) with the most events, a dead letter among them if any."""
    return query(bigquery_client(stack.project),
                 f"SELECT user_id, COUNTIF(malformed) AS dead, COUNT(*) AS n "
                 f"FROM `{stack.project}.{target.dataset}.producer_ledger` WHERE run_id = @run AND event_type = @t "
                 "AND user_id IS NOT NULL GROUP BY user_id ORDER BY dead DESC, n DESC LIMIT 1",
                 {"run": RUN_ID, "t": event_type})[0]["user_id"]


def test_an_erased_user_and_customer_are_gone_and_everyone_else_reconciles(run):
    stack, target = run["stack"], run["target"]
    user, customer = _busiest(stack, target, "user_activity"), _busiest(stack, target, "order")
    assert _mentions(stack, target, user) and _mentions(stack, target, customer)
    dry = _gdpr(stack, target, "erase", f"--user-id={user}", "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing changed" in dry.stdout and _mentions(stack, target, user)

    # the user's erasure first finds every folder still open (a settle time of two hours), then finishes
    requests = {user: _erase(stack, target, "--user-id", user, first_settle_s=7200),
                customer: _erase(stack, target, "--customer-id", customer)}
    for subject, request in requests.items():
        assert _mentions(stack, target, subject) == {}, subject
        verified = _gdpr(stack, target, "verify", f"--subject-id={subject}", f"--request-id={request}")
        assert verified.returncode == 0 and "VERIFIED" in verified.stdout, verified.stdout + verified.stderr
        log = query(bigquery_client(stack.project), f"SELECT step, removed FROM `{stack.project}.{target.dataset}."
                                                    "erasure_log` WHERE request_id = @r", {"r": request})
        steps = {r["step"]: r["removed"] for r in log}
        assert steps.get("done") and steps.get("files") and "suppressed" in steps, steps
    # everyone else: the whole reconciliation of the run passes (the erased subjects' ledger rows are gone too)
    outcome = run_all(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                      Scope(RUN_ID, allowed_lateness_s=0))
    failing = {r.name: [row for row in r.rows if row.get("failures")] or r.notes
               for r in outcome["results"] if not r.passed}
    assert not failing, failing
    run["erased_user"] = user


def test_a_later_event_of_an_erased_user_is_dropped(run):
    stack, target, job, tmp = run["stack"], run["target"], run["job"], run["tmp"]
    user = run.get("erased_user")
    assert user, "the erasure test runs first"
    # The job re-reads the list every 5 s (--erasure_refresh_s=5) and says when it grew: from
    # then on, nothing of the user is stored.
    deadline = time.monotonic() + 60
    while "erased subjects: 2" not in (tmp / "job.log").read_text():
        assert time.monotonic() < deadline, "the job never read the new list of erased subjects"
        time.sleep(0.2)
    now = datetime.now(timezone.utc)
    later, marker = activity(now, user_id=user), activity(now, user_id="a11ce000-0000-4000-8000-00000000000b")
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, TOPIC)
    for body in (later, marker):
        publisher.publish(topic, orjson.dumps(body)).result(timeout=30)
    client = bigquery_client(stack.project)
    deadline = time.monotonic() + 60
    while not query(client, f"SELECT COUNT(*) AS n FROM `{stack.project}.{target.dataset}.user_activity_events` "
                            "WHERE user_id = @u", {"u": marker["user_id"]})[0]["n"]:
        assert time.monotonic() < deadline, "the marker event did not land"
        time.sleep(0.5)
    stop_pid(job.pid, timeout=30)
    counters = json.loads((tmp / "metrics.json").read_text())["counters"]
    assert counters.get("gdpr.suppressed", 0) >= 1, counters
    assert "erased subjects: 2" in (tmp / "job.log").read_text()
    assert _mentions(stack, target, user) == {}
