"""Fixtures: a running, provisioned local stack for the tests that need one.

Started once per session on free loopback ports in a temporary folder and
stopped (by PID) at the end, also when tests fail or the run is interrupted.
"""

from __future__ import annotations

import os

import pytest

from localstack import LocalStack
from pipeline.provision import provision

DATASET, TOPIC, SUBSCRIPTION, BUCKET = "ecommerce", "events", "events-sub", "test-bucket"

os.environ.setdefault("NO_GCE_CHECK", "True")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    local = LocalStack(workdir=tmp_path_factory.mktemp("stack"), project="test-project")
    saved = dict(os.environ)
    local.start()
    try:
        local.apply_env()
        provision(local.project, DATASET, TOPIC, SUBSCRIPTION, BUCKET)
        yield local
    finally:
        local.stop()
        os.environ.clear()
        os.environ.update(saved)
        for service in local.services:
            assert service.pid is None


def start_job(stack, tmp, *extra: str):
    """The streaming job as a subprocess against the test stack (logs appended to tmp/job.log)."""
    import subprocess
    import sys

    from localstack.services import PROJECT_ROOT

    cmd = [sys.executable, "-m", "pipeline", "--runner=BundleBasedDirectRunner", "--streaming",
           f"--project={stack.project}", f"--subscription=projects/{stack.project}/subscriptions/{SUBSCRIPTION}",
           f"--dataset={DATASET}", f"--output_prefix=gs://{BUCKET}/output", "--late_firing_delay_s=1",
           f"--metrics_out={tmp / 'metrics.json'}", *extra]
    return subprocess.Popen(cmd, stdout=open(tmp / "job.log", "ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=dict(os.environ, **stack.env()),
                            start_new_session=True)
