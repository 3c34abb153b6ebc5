"""Start, describe and stop the whole local stack as one unit.

`LocalStack` is used three ways:
* as a context manager by the tests and by `scripts/demo.sh` (stopped on exit,
  on Ctrl-C and when a test fails);
* by `python -m localstack up|down|env|status` for a developer who wants the
  emulators running while they work; `up` records the PIDs in a state file and
  `down` stops exactly those PIDs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from localstack.services import (
    PROJECT_ROOT,
    BigQueryEmulator,
    GcsEmulator,
    PubSubEmulator,
    S3Emulator,
    Service,
    StackError,
    pid_alive,
    stop_pid,
)

DEFAULT_WORKDIR = PROJECT_ROOT / ".local" / "stack"
DEFAULT_PROJECT = "local-project"


@dataclass
class LocalStack:
    workdir: Path = DEFAULT_WORKDIR
    project: str = DEFAULT_PROJECT
    pubsub_port: int = 0
    bigquery_port: int = 0
    gcs_port: int = 0
    s3_port: int = 0
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.pubsub = PubSubEmulator(workdir=self.workdir, port=self.pubsub_port)
        self.bigquery = BigQueryEmulator(workdir=self.workdir, port=self.bigquery_port, project=self.project,
                                         start_timeout=90)
        self.gcs = GcsEmulator(workdir=self.workdir, port=self.gcs_port)
        self.s3 = S3Emulator(workdir=self.workdir, port=self.s3_port)
        self.services = [self.pubsub, self.bigquery, self.gcs, self.s3]

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "LocalStack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Check every prerequisite first, so a missing jar is reported before
        # anything is started (and nothing is left behind to clean up).
        for service in self.services:
            service.preflight()
        try:
            for service in self.services:
                service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what clients need ---------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            # Never probe the GCE metadata server, never look for ADC files.
            "NO_GCE_CHECK": "True",
            "GCE_METADATA_HOST": "127.0.0.1:1",
            "GCE_METADATA_IP": "127.0.0.1:1",
        }
        for service in self.services:
            env.update(service.client_env())
        return env

    @property
    def gcs_root(self) -> Path:
        return self.gcs.root

    def apply_env(self) -> None:
        os.environ.update(self.env())

    def describe(self) -> dict:
        return {"project": self.project, "workdir": str(self.workdir), "env": self.env(),
                "services": [s.describe() for s in self.services]}


# -- the state file used by the CLI ------------------------------------------
def state_path(workdir: Path = DEFAULT_WORKDIR) -> Path:
    return Path(workdir) / "state.json"


def read_state(workdir: Path = DEFAULT_WORKDIR) -> dict | None:
    path = state_path(workdir)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_state(stack: LocalStack) -> None:
    state_path(stack.workdir).write_text(json.dumps(stack.describe(), indent=2))


def stop_from_state(workdir: Path = DEFAULT_WORKDIR) -> list[str]:
    state = read_state(workdir)
    stopped = []
    if not state:
        return stopped
    for svc in state["services"]:
        pid = svc.get("pid")
        if pid and pid_alive(pid):
            stop_pid(pid)
            stopped.append(f"{svc['name']} (pid {pid})")
    state_path(workdir).unlink(missing_ok=True)
    return stopped


@contextlib.contextmanager
def interrupts_raise():
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop the stack."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["LocalStack", "StackError", "read_state", "write_state", "stop_from_state", "interrupts_raise"]
