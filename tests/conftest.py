"""Fixtures: a running, provisioned local stack for the tests that need one.

Started once per session on free loopback ports in a temporary folder and
stopped (by PID) at the end, also when tests fail or the run is interrupted.
"""

from __future__ import annotations

import os

import pytest

import localrun.process
from common.clients import use_anonymous_beam_credentials
from localstack import LocalStack
from provision import provision
from schemas.contract import SUBSCRIPTION, TOPIC

DATASET, BUCKET = "ecommerce", "test-bucket"

os.environ.setdefault("NO_GCE_CHECK", "True")


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


def start_job(stack, tmp, *extra: str, env=None):
    """The streaming job against the test stack (logs appended to tmp/job.log)."""
    return localrun.process.start_job(
        stack, tmp / "job.log", subscription=SUBSCRIPTION, dataset=DATASET, bucket=BUCKET,
        extra=["--late_firing_delay_s=1", f"--metrics_out={tmp / 'metrics.json'}", *extra], env=env)


def wait_until_running(job, log_path, timeout_s: float = 120) -> None:
    """Block until the job says it is running (its log line), never on a fixed
    sleep; fail at once with the log if it died."""
    localrun.process.wait_until_running(job, log_path, timeout_s)
