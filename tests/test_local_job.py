"""`python -m localrun` as a user runs it: the counters it prints when it
stops count every message it read, and its run duration stops it.

A job of its own, on a subscription, dataset and bucket of its own: it
reads exactly what the test publishes."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from common.clients import bigquery_client, publisher_client
from localstack.services import stop_pid
from reconcile.checks import query
from schemas.contract import TOPIC
from tests import brief_events
from tests.conftest import Target, own_target, publish_bodies, start_job, wait_until_running

pytestmark = pytest.mark.stack


def _stored(stack, target: Target, since: datetime) -> int:
    d = f"{stack.project}.{target.dataset}"
    return query(bigquery_client(stack.project),
                 f"SELECT (SELECT COUNT(*) FROM `{d}.all_events` WHERE ingest_time >= @since) + "
                 f"(SELECT COUNT(*) FROM `{d}.dead_letter` WHERE received_at >= @since) AS n",
                 {"since": since})[0]["n"]


def test_the_counters_at_the_end_count_every_message(stack, tmp_path):
    target = own_target(stack, "local-job")
    job = start_job(stack, tmp_path, target=target)
    wait_until_running(job, tmp_path / "job.log")
    since = datetime.now(timezone.utc)
    now = since - timedelta(seconds=5)
    valid = [orjson.dumps(b) for b in brief_events.examples(80, seed=21, at=now - timedelta(seconds=30))]
    malformed = [b"{not json", b"   ", b'{"event_type": "refund"}'] * 10
    publish_bodies(stack, valid, "local-job-counters", tmp_path, target.dataset)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, TOPIC)
    for future in [publisher.publish(topic, body) for body in malformed]:
        future.result(timeout=30)
    total = len(valid) + len(malformed)
    deadline = time.monotonic() + 180
    while _stored(stack, target, since) < total:  # every message is a row somewhere: an event or a dead letter
        assert job.poll() is None and time.monotonic() < deadline, (tmp_path / "job.log").read_text()[-3000:]
        time.sleep(0.5)
    stop_pid(job.pid, timeout=60)
    counters = json.loads((tmp_path / "metrics.json").read_text())["counters"]
    assert counters["events.read"] == total, counters
    valid_counted = sum(v for k, v in counters.items() if k.startswith("events.valid_"))
    assert valid_counted == len(valid) and counters["events.invalid"] == len(malformed), counters
    assert "job CANCELLED; counters: " in (tmp_path / "job.log").read_text()


def test_the_run_duration_stops_the_job(stack, tmp_path):
    job = start_job(stack, tmp_path, "--run_duration_s=5", target=own_target(stack, "run-duration"))
    wait_until_running(job, tmp_path / "job.log")
    assert job.wait(timeout=60) == 0
    log = (tmp_path / "job.log").read_text()
    assert "run duration of 5s reached" in log and "job CANCELLED" in log
