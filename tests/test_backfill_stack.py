"""The backfill end to end on the emulators, S3 included: the simulator writes
two days of history to the local S3, part of it reaches the stream first,
`python -m backfill` loads the rest through the job's rules, the
reconciliation passes, and a second run changes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.clients import bigquery_client
from localstack.services import stop_pid
from provision import ensure_s3_bucket
from reconcile.checks import Scope, query, run_all, wait_until_passed
from reconcile.files import scan
from simulator.history import generate, history_faults, write_history
from simulator.ledger import LedgerWriter, aggregate, load_to_bigquery, read_lines
from tests.conftest import own_target, publish_bodies, start_job, wait_until_running

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "history-e2e"


def _backfill(stack, target, *extra: str) -> subprocess.CompletedProcess:
    """`python -m backfill` as a user runs it (a child process, the stack's environment)."""
    cmd = [sys.executable, "-m", "backfill", f"--project={stack.project}", f"--dataset={target.dataset}",
           f"--output_prefix={target.prefix}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, **stack.env()})


def _counts(stack, target) -> dict:
    d = f"`{stack.project}.{target.dataset}"
    row = query(bigquery_client(stack.project),
                f"SELECT (SELECT COUNT(*) FROM {d}.all_events`) AS raw, "
                f"(SELECT COUNT(*) FROM {d}.all_events_dedup`) AS dedup, "
                f"(SELECT COUNT(*) FROM {d}.dead_letter`) AS dead, "
                f"(SELECT COUNT(*) FROM {d}.conflicts`) AS conflicts, "
                f"(SELECT COUNT(*) FROM {d}.files_written`) AS files")[0]
    return dict(row)


@pytest.fixture(scope="module")
def history(stack, tmp_path_factory):
    """Two days of history in the local S3 (48 hours, across two midnights),
    with duplicates, conflicts, malformed records and unknown fields."""
    from datetime import datetime, timedelta, timezone

    tmp = tmp_path_factory.mktemp("history")
    target = own_target(stack, "backfill")
    ensure_s3_bucket("history")
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = generate(end - timedelta(hours=48), 48, 6, history_faults(0.05, 0.03, 0.04, 0.03), seed=15)
    ledger = LedgerWriter(tmp / "history.jsonl")
    written = write_history("s3://history/events", hours, ledger, RUN_ID)
    ledger.close()
    rows = aggregate(read_lines(tmp / "history.jsonl"))
    return {"target": target, "tmp": tmp, "rows": rows, "written": written, "ledger": tmp / "history.jsonl"}


@pytest.fixture(scope="module")
def first_run(stack, history):
    """Some of the history reaches the stream first (an overlap at the end of
    the export); then the backfill."""
    target, tmp = history["target"], history["tmp"]
    valid = [r for r in history["rows"] if not r["malformed"] and not r["conflict"]]
    # The overlap: the last hour's valid records, as the stream's producer sends them.
    from pipeline.backfill import records_of

    last_hour = sorted({r for r in _history_files(stack)})[-1]
    shas = {r["payload_sha256"] for r in valid}
    overlap = [data for _, data in records_of(last_hour) if hashlib.sha256(data).hexdigest() in shas]
    assert overlap
    job = start_job(stack, tmp, target=target)
    try:
        wait_until_running(job, tmp / "job.log")
        publish_bodies(stack, overlap, "history-overlap", tmp, target.dataset)
        outcome = wait_until_passed(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                                    Scope("history-overlap", streaming=False), 180)
        assert all(r.passed for r in outcome["results"]), [r for r in outcome["results"] if not r.passed]
    finally:
        stop_pid(job.pid, timeout=30)
    before = _counts(stack, target)
    result = _backfill(stack, target, "--input=s3://history/events/**", f"--run_id={RUN_ID}")
    assert result.returncode == 0, result.stderr[-4000:]
    load_to_bigquery(history["ledger"], stack.project, target.dataset)
    return {"before": before, "after": _counts(stack, target), "stdout": result.stdout, "stderr": result.stderr,
            "overlap": len(overlap)}


def _history_files(stack) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    from common.clients import filesystem_options

    filesystem_options()
    return [m.path for m in FileSystems.match(["s3://history/events/**"])[0].metadata_list
            if m.path.split("/")[-1].startswith("events.jsonl")]


def test_two_days_of_history_from_s3_reconcile(stack, history, first_run):
    target = history["target"]
    outcome = run_all(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                      Scope(RUN_ID, streaming=False))
    failing = {r.name: [row for row in r.rows if row.get("failures")] or r.notes
               for r in outcome["results"] if not r.passed}
    assert not failing, failing
    names = {r.name for r in outcome["results"]}
    assert {"missing", "duplicates", "malformed", "conflicts", "content"} <= names and "metrics" not in names
    rows = history["rows"]
    good = [r for r in rows if not r["malformed"] and not r["conflict"]]
    assert len(good) >= 250 and any(r["malformed"] for r in rows) and any(r["conflict"] for r in rows)
    # 48 hours cross midnight: the events sit in the partition of their own date
    from schemas.contract import parse_timestamp

    dates = {parse_timestamp(r["event_time"]).date() for r in good}
    stored_dates = query(bigquery_client(stack.project),
                         f"SELECT DISTINCT DATE(event_time) AS d FROM `{stack.project}.{target.dataset}.all_events`")
    assert len(dates) >= 2 and {r["d"] for r in stored_dates} == dates
    # every record of the history went in once, the overlap's included (the stream's copy stayed the only row)
    after, before = first_run["after"], first_run["before"]
    assert after["raw"] == after["dedup"] == len(good)
    assert after["raw"] - before["raw"] == len(good) - first_run["overlap"]
    assert "BigQuery:" in first_run["stdout"] and f"{len(good) - first_run['overlap']:,} new event rows" in \
        first_run["stdout"]
    # a malformed record's dead letter says which file and line
    dead = query(bigquery_client(stack.project),
                 f"SELECT JSON_VALUE(attributes, '$.source_file') AS file, JSON_VALUE(attributes, '$.source_line') AS line "
                 f"FROM `{stack.project}.{target.dataset}.dead_letter` LIMIT 5")
    assert dead and all(d["file"].startswith("s3://history/events/") and int(d["line"]) >= 1 for d in dead)


def test_a_second_run_changes_nothing(stack, history, first_run):
    target = history["target"]
    inventory_before = scan(target.prefix, stack.project)
    result = _backfill(stack, target, "--input=s3://history/events/**")
    assert result.returncode == 0, result.stderr[-4000:]
    assert _counts(stack, target) == first_run["after"]
    assert "BigQuery: 0 new event rows" in result.stdout and "files: 0 written" in result.stdout
    inventory_after = scan(target.prefix, stack.project)
    assert inventory_after.files == inventory_before.files


def test_a_pattern_that_matches_nothing_stops_the_command_at_once(stack, history):
    result = _backfill(stack, history["target"], "--input=s3://history/no-such-prefix/**")
    assert result.returncode == 2 and "--input matches no file: s3://history/no-such-prefix/**" in result.stderr


def test_a_history_replayed_into_the_stream_reconciles(stack, history, tmp_path):
    """python -m simulator.replay: the last 8 hours of the history, published
    at 3,600 times their speed to a streaming job of its own: every event,
    days late for the job, lands once in BigQuery and in its minute folder."""
    target = own_target(stack, "rehearsal")
    job = start_job(stack, tmp_path, target=target)
    try:
        wait_until_running(job, tmp_path / "job.log")
        hours = sorted({path.rsplit("/", 1)[0] for path in _history_files(stack)})[-8:]
        inputs = [f"--input={folder}/*" for folder in hours]
        result = subprocess.run([sys.executable, "-m", "simulator.replay", f"--project={stack.project}", *inputs,
                                 "--speed=3600", "--run-id=rehearsal", f"--ledger={tmp_path / 'rehearsal.jsonl'}",
                                 f"--load-ledger-dataset={target.dataset}"], capture_output=True, text=True,
                                timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL, env={**os.environ, **stack.env()})
        assert result.returncode == 0, result.stderr[-3000:]
        outcome = wait_until_passed(bigquery_client(stack.project), stack.project, target.dataset, target.prefix,
                                    Scope("rehearsal"), 300, keep_waiting=lambda: job.poll() is None)
    finally:
        stop_pid(job.pid, timeout=30)
    failing = {r.name: [row for row in r.rows if row.get("failures")] or r.notes
               for r in outcome["results"] if not r.passed}
    assert not failing, failing
    assert outcome["ledger_events"] > 40 and outcome["ledger_malformed"] > 0
