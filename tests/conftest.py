"""Fixtures: a running, provisioned local stack for the tests that need one.

Started once per session on free loopback ports in a temporary folder and
stopped (by PID) at the end, also when tests fail or the run is interrupted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

import localrun.process
from common.clients import publisher_client, use_anonymous_beam_credentials
from localstack import LocalStack
from provision import provision
from schemas.contract import SUBSCRIPTION, TOPIC
from simulator.ledger import LedgerWriter, load_to_bigquery

DATASET, BUCKET = "ecommerce", "test-bucket"

os.environ.setdefault("NO_GCE_CHECK", "True")


# scripts/test.sh runs the suite on two pytest-xdist workers, each with its
# own emulator stack (the session fixture below), one test file at a time
# (--dist loadfile: a file's module fixtures, a job, a run, a built
# warehouse, serve all its tests). Files start longest first, from the
# suite's durations on 2 cores, so that the two workers finish together: the
# drills (about 16 minutes) on one worker, with a quick file queued behind
# them, while the other works through the rest; the others keep file order.
LONGEST_FIRST = (
    "test_reliability.py",
    "test_end_to_end.py",
    "test_lint.py",
    "test_gdpr.py",
    "test_backfill_stack.py",
    "test_hostile_input.py",
    "test_warehouse.py",
    "test_deadletter_replay.py",
    "test_local_job.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: file order within a rank


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    local = LocalStack(workdir=tmp_path_factory.mktemp("stack"), project="test-project")
    saved = dict(os.environ)
    local.start()
    try:
        local.apply_env()
        use_anonymous_beam_credentials()  # FileSystems on gs:// here: the emulator needs no credentials
        provision(local.project, DATASET, TOPIC, SUBSCRIPTION, BUCKET)
        yield local
    finally:
        local.stop()
        os.environ.clear()
        os.environ.update(saved)
        for service in local.services:
            assert service.pid is None


@dataclass(frozen=True)
class Target:
    """Where a job reads and writes: its subscription, dataset and bucket."""

    subscription: str = SUBSCRIPTION
    dataset: str = DATASET
    bucket: str = BUCKET

    @property
    def prefix(self) -> str:
        return f"gs://{self.bucket}/output"


SHARED = Target()


def own_target(stack, name: str) -> Target:
    """A fresh subscription (it receives only what is published from now
    on), dataset and bucket, provisioned: a test whose events must not share
    minutes, metrics or folders with the other tests' runs (the drills'
    far-late events are back-dated by minutes)."""
    target = Target(subscription=f"{SUBSCRIPTION}-{name}", dataset=name.replace("-", "_"), bucket=f"bucket-{name}")
    provision(stack.project, target.dataset, TOPIC, target.subscription, target.bucket)
    return target


def start_job(stack, tmp, *extra: str, env=None, target: Target = SHARED, cwd=localrun.process.PROJECT_ROOT):
    """The streaming job against the test stack (logs appended to tmp/job.log)."""
    return localrun.process.start_job(
        stack, tmp / "job.log", subscription=target.subscription, dataset=target.dataset, bucket=target.bucket,
        extra=["--late_firing_delay_s=1", f"--metrics_out={tmp / 'metrics.json'}", *extra], env=env, cwd=cwd)


def wait_until_running(job, log_path, timeout_s: float = 120) -> None:
    """Block until the job says it is running (its log line), never on a fixed
    sleep; fail at once with the log if it died."""
    localrun.process.wait_until_running(job, log_path, timeout_s)


def publish_bodies(stack, bodies: list[bytes], run_id: str, tmp: Path, dataset: str = DATASET) -> datetime:
    """Publish raw bodies with no attributes at all, as the brief's producer,
    and record them in the producer ledger like any producer run (the run's
    events share minutes with other tests' runs, whose reconciliation must
    know them)."""
    from schemas.contract import format_timestamp
    from simulator.faults import plan_of_body

    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, TOPIC)
    started = datetime.now(timezone.utc)
    for future in [publisher.publish(topic, body) for body in bodies]:
        future.result(timeout=30)
    confirmed = format_timestamp(datetime.now(timezone.utc))
    ledger = LedgerWriter(tmp / f"{run_id}.jsonl")
    for body in bodies:
        ledger.record_copy(run_id, plan_of_body(body), 0, format_timestamp(started), confirmed_time=confirmed)
    ledger.close()
    load_to_bigquery(tmp / f"{run_id}.jsonl", stack.project, dataset)
    return started
