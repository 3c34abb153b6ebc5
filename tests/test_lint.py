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


def _sql_comment_parameters(text: str) -> list[str]:
    """`@name` in the `--` comments of an SQL text."""
    import re

    found = []
    for number, line in enumerate(text.splitlines(), 1):
        comment = line.split("--", 1)[1] if "--" in line else ""
        found += [f"line {number}: @{name}" for name in re.findall(r"@(\w+)", comment)]
    return found


def test_no_query_parameter_names_in_sql_comments():
    """The BigQuery emulator counts an `@name` inside a comment as a query
    parameter and refuses the query ("Parameter argument/count mismatch"):
    the dashboard once failed every refresh on one such comment."""
    assert _sql_comment_parameters("SELECT 1 -- rows since @start\n") == ["line 1: @start"]
    offenders = {str(path.relative_to(ROOT)): found
                 for folder in ("sql", "ddl") for path in sorted((ROOT / folder).rglob("*.sql"))
                 if (found := _sql_comment_parameters(path.read_text()))}
    assert offenders == {}, "write the parameter's name without @ in comments"
