"""Dead-letter replay on the emulators, after a real fix: orders with a
status the schema does not know are dead-lettered; the schema learns the
status and the job is deployed again from that tree; `python -m deadletters
replay` republishes exactly those dead letters, once: they land, and a
second replay publishes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from common.clients import bigquery_client, publisher_client
from localstack.services import stop_pid
from reconcile.checks import query
from schemas.contract import TOPIC
from tests.conftest import own_target, start_job, wait_until_running
from tests.helpers import order

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent


def _deadletters(stack, target, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deadletters", *args, f"--project={stack.project}",
                           f"--dataset={target.dataset}"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env={**os.environ, **stack.env()})


def _wait(what, condition, job, log: Path, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert job.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        time.sleep(0.5)


def _evolved_tree(tmp: Path) -> Path:
    """A copy of the job's tree whose order schema also knows the status
    `cancelled` (a compatible change: python -m schemas.compat accepts it)."""
    tree = tmp / "tree-v2"
    for name in ("pipeline", "schemas", "localrun", "common", "localstack"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    avsc = tree / "schemas" / "events" / "order.avsc"
    schema = json.loads(avsc.read_text())
    status = next(f for f in schema["fields"] if f["name"] == "status")
    status["type"]["symbols"].append("cancelled")
    avsc.write_text(json.dumps(schema, indent=2))
    return tree


def test_fixed_dead_letters_are_replayed_once_and_land(stack, tmp_path):
    target = own_target(stack, "replay")
    client = bigquery_client(stack.project)
    d = f"`{stack.project}.{target.dataset}"
    now = datetime.now(timezone.utc) - timedelta(seconds=30)
    cancelled = [orjson.dumps(order(now, order_id=f"0b7c1c52-8f0e-4e1a-9a53-{i:012d}", status="cancelled"))
                 for i in range(12)]
    still_bad = [b'{"event_type": "order", "order_id": ', b"\xff\xfe not utf-8"]
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, TOPIC)

    job = start_job(stack, tmp_path, target=target)
    try:
        wait_until_running(job, tmp_path / "job.log")
        for future in [publisher.publish(topic, body) for body in cancelled + still_bad]:
            future.result(timeout=30)
        _wait("the dead letters", lambda: query(client, f"SELECT COUNT(DISTINCT dead_letter_id) AS n FROM "
                                                        f"{d}.dead_letter`")[0]["n"] >= 14, job, tmp_path / "job.log")
    finally:
        stop_pid(job.pid, timeout=30)
    summary = _deadletters(stack, target, "summary")
    assert summary.returncode == 0 and "schema_mismatch" in summary.stdout, summary.stderr

    # A dry run says what would go, and publishes nothing.
    args = ("replay", "--error-type=schema_mismatch", "--event-type=order", "--note=status cancelled added")
    dry = _deadletters(stack, target, *args, "--dry-run")
    assert dry.returncode == 0 and "12 dead letters selected, 12 replayable" in dry.stdout, dry.stdout + dry.stderr
    assert "dry run: nothing published" in dry.stdout
    assert query(client, f"SELECT COUNT(*) AS n FROM {d}.dead_letter_replays`")[0]["n"] == 0

    # The fix is deployed: the same job from a tree whose schema knows "cancelled".
    tree = _evolved_tree(tmp_path)
    job = start_job(stack, tmp_path, target=target, cwd=tree)
    try:
        wait_until_running(job, tmp_path / "job.log")
        done = _deadletters(stack, target, *args)
        assert done.returncode == 0 and "published 12 to" in done.stdout, done.stdout + done.stderr
        landed = _wait("the replayed orders in BigQuery", lambda: query(
            client, f"SELECT COUNT(*) AS n FROM {d}.order_events` WHERE status = 'cancelled'")[0]["n"] >= 12,
            job, tmp_path / "job.log")
        assert landed
        again = _deadletters(stack, target, *args)
        assert again.returncode == 0 and "0 dead letters selected" in again.stdout and "nothing to publish" in \
            again.stdout, again.stdout
    finally:
        stop_pid(job.pid, timeout=30)
    rows = query(client, f"SELECT order_id, COUNT(*) AS n FROM {d}.order_events` WHERE status = 'cancelled' "
                         "GROUP BY order_id")
    assert len(rows) == 12 and all(r["n"] == 1 for r in rows)
    replays = query(client, f"SELECT COUNT(*) AS n, COUNT(DISTINCT dead_letter_id) AS ids, "
                            f"ANY_VALUE(reason_for_replay) AS note FROM {d}.dead_letter_replays`")[0]
    assert replays == {"n": 12, "ids": 12, "note": "status cancelled added"}
    # the ones still wrong stay where they are, unpublished
    left = query(client, f"SELECT COUNT(DISTINCT dead_letter_id) AS n FROM {d}.dead_letter` WHERE dead_letter_id "
                         f"NOT IN (SELECT dead_letter_id FROM {d}.dead_letter_replays`)")[0]["n"]
    assert left == 2
