"""The local job as a child process: how the demo, the benchmarks and the
tests start it against a running local stack and know it is running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from localrun.runner import RUNNING

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_job(stack, log_path: Path, *, subscription: str, dataset: str, bucket: str, extra=(), env=None,
              cwd: Path = PROJECT_ROOT):
    """`python -m localrun` against `stack` (a localstack.LocalStack), as a
    child in its own session (stop it by PID; its process group holds
    nothing else); output appended to log_path. `env` overrides the stack's
    client environment (a drill routes Pub/Sub through a cuttable link);
    `cwd`: the tree the job runs from (a test deploys an evolved copy)."""
    cmd = [sys.executable, "-m", "localrun", f"--project={stack.project}",
           f"--subscription=projects/{stack.project}/subscriptions/{subscription}",
           f"--dataset={dataset}", f"--output_prefix=gs://{bucket}/output", *extra]
    return subprocess.Popen(cmd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, env={**os.environ, **stack.env(), **(env or {})},
                            start_new_session=True)


def wait_until_running(job, log_path: Path, timeout_s: float = 120) -> None:
    """Block until the job's log says it runs (the line `python -m localrun`
    prints once its graph is running), polling the log; raise at once with
    the log's end if the job exited instead."""
    deadline = time.monotonic() + timeout_s
    marker = f"{RUNNING} (pid {job.pid})"
    while time.monotonic() < deadline:
        text = Path(log_path).read_text(errors="replace") if Path(log_path).exists() else ""
        if marker in text:
            return
        if job.poll() is not None:
            raise RuntimeError(f"the job exited with {job.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the job did not start within {timeout_s}s")
