"""The dashboard as a child process (the demo and the tests start it this way)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start(env: dict, project: str, dataset: str, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    """`python -m dashboard` in its own session (stop it by PID), output appended to `log_path`."""
    cmd = [sys.executable, "-m", "dashboard", f"--project={project}", f"--dataset={dataset}", f"--port={port}",
           *extra]
    return subprocess.Popen(cmd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=PROJECT_ROOT, env={**os.environ, **env}, start_new_session=True)


def wait_until_serving(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 60) -> None:
    """Until the page answers 200 (the server's own signal that it serves);
    raise at once with the log if the process exited instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {proc.returncode}:\n"
                               f"{Path(log_path).read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the dashboard did not answer at {url} within {timeout_s}s")
