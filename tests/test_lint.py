"""Undefined names, unused imports and other pyflakes findings fail the suite
(ruff's F rules): a NameError in a rarely taken branch is found here, not in
production."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_pyflakes_findings():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--no-cache", "--quiet",
                             "--exclude", ".venv,.venv-bq,.local", str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
