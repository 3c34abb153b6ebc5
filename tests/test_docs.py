"""The documents say only what the repository still has: every file path and
command they quote (README.md, docs/*.md) exists, and every measured figure of
docs/system-design.md (the bold numbers) appears in the latest benchmark
(docs/bench/*.json, outside its lists of rounds and slices) or in the output
of python -m bench.capacity, and each cell of its capacity table is the figure
of that row and scenario. Each check is shown to fail on what it exists for."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_DIRS = ("pipeline", "schemas", "ddl", "simulator", "tests", "sql", "docs", "deploy", "scripts", "bench",
            "warehouse", "gdpr", "backfill", "deadletters", "dashboard", "localrun", "localstack", "provision",
            "reconcile", "common", "demo", ".ci")
TOP_FILES = ("run_dataflow.sh", "setup.py", "requirements.txt", "requirements-dev.txt", "Dockerfile",
             "metadata.json", "main.py", "pytest.ini")
_PATH = re.compile(r"(?<![\w/.$-])(?:\./)?((?:%s)/[\w./*<>{}-]*|(?:%s)\b)(::\w+)?" % (
    "|".join(re.escape(d) for d in TOP_DIRS), "|".join(re.escape(f) for f in TOP_FILES)))
_MODULE = re.compile(r"python -m ([\w.]+)")
_SCRIPT_COMMAND = re.compile(r"\./run_dataflow\.sh ([a-z][\w-]*)")
_CODE = re.compile(r"`([^`\n]+)`|^```[^\n]*\n(.*?)^```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _code_spans(text: str) -> list[str]:
    return [a or b for a, b in _CODE.findall(text)]


def quoted_paths(doc: Path, text: str) -> set[tuple[str, str | None]]:
    """(path relative to the repository, ::test or None) the text quotes in
    code spans and links. Templates (`<type>`, `YYYY`, ...) are not paths."""
    found = set()
    for span in _code_spans(text):
        for path, test in _PATH.findall(span):
            found.add((path.rstrip("."), test[2:] or None))
    for target in _LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        resolved = (doc.parent / target).resolve()
        if resolved.is_relative_to(ROOT):
            found.add((str(resolved.relative_to(ROOT)), None))
    return {(p, t) for p, t in found if not re.search(r"[<>{}]|YYYY|…|\.\.\.", p)}


def missing_paths(found: set[tuple[str, str | None]]) -> list[str]:
    missing = []
    for path, test in sorted(found, key=lambda x: (x[0], x[1] or "")):
        matches = list(ROOT.glob(path)) if "*" in path else [ROOT / path] if (ROOT / path).exists() else []
        if not matches:
            missing.append(path)
        elif test and not re.search(rf"^def {re.escape(test)}\(", matches[0].read_text(), re.M):
            missing.append(f"{path}::{test}")
    return missing


def missing_commands(text: str) -> list[str]:
    """`python -m X` whose module is gone, `./run_dataflow.sh X` the script no longer has."""
    script = (ROOT / "run_dataflow.sh").read_text()
    script_commands = {c for label in re.findall(r"^\s+([\w|-]+)\)$", script, re.M) for c in label.split("|")}
    missing = []
    for span in _code_spans(text):
        for module in _MODULE.findall(span):
            base = ROOT / module.replace(".", "/")
            if not ((base / "__main__.py").exists() or base.with_suffix(".py").exists()):
                missing.append(f"python -m {module}")
        for command in _SCRIPT_COMMAND.findall(span):
            if command not in script_commands:
                missing.append(f"./run_dataflow.sh {command}")
    return missing


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def _scalars(node, out: set[str]) -> set[str]:
    """Every number of a JSON document outside lists (a list holds rounds and
    slices: small integers that would let any bold figure pass)."""
    if isinstance(node, dict):
        for v in node.values():
            _scalars(v, out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.add(f"{node:g}" if isinstance(node, float) else str(node))
    return out


def capacity() -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.capacity", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def measured_figures() -> set[str]:
    """The numbers of the latest benchmark and of python -m bench.capacity."""
    bench = sorted((ROOT / "docs" / "bench").glob("*.json"))[-1]
    figures = _scalars(json.loads(bench.read_text()), set())
    for scenario in capacity()["scenarios"]:
        figures |= _scalars(scenario, set())
    return figures


# Section 5's table: row label (its start) -> the key of python -m bench.capacity --json.
CAPACITY_ROWS = {
    "vCPUs busy at peak": "busy_vcpus", "vCPUs at 50% use": "vcpus_at_target",
    "n2-standard-2 workers at peak": "workers_n2_standard_2", "data per month, TB": "data_tb_per_month",
    "Dataflow workers": "dataflow_workers", "Streaming Engine shuffle": "streaming_engine_shuffle",
    "Pub/Sub": "pubsub", "BigQuery `insertAll`": "bigquery_insertall",
    "BigQuery storage, steady state": "bigquery_storage_steady_state", "GCS files, steady state": "gcs_files_steady_state",
    "total, $/month": "total_with_insertall", "total with the Storage Write API": "total_with_storage_write_api",
}


def capacity_table_problems(text: str, plan: dict) -> list[str]:
    """Each cell of the capacity table against the scenario it stands for."""
    problems, seen = [], set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        label = next((k for k in CAPACITY_ROWS if cells[0].startswith(k)), None)
        if label is None or len(cells) != 3:
            continue
        seen.add(label)
        key = CAPACITY_ROWS[label]
        for cell, scenario in zip(cells[1:], plan["scenarios"]):
            want = scenario.get(key, scenario["monthly_usd"].get(key))
            if _numbers(cell) != {str(want)}:
                problems.append(f"{label}: {cell} != {want}")
    return problems + [f"row missing: {k}" for k in CAPACITY_ROWS if k not in seen]


def unmeasured_bold_numbers(text: str, measured: set[str]) -> list[str]:
    return [span for span in re.findall(r"\*\*([^*]+)\*\*", text)
            if _numbers(span) and not _numbers(span) <= measured]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_quoted_path_and_command_exists(doc):
    text = doc.read_text()
    assert not missing_paths(quoted_paths(doc, text)), doc.name
    assert not missing_commands(text), doc.name


def test_every_measured_figure_of_the_design_is_in_the_latest_benchmark():
    text = (ROOT / "docs" / "system-design.md").read_text()
    bold = [span for span in re.findall(r"\*\*([^*]+)\*\*", text) if _numbers(span)]
    assert len(bold) > 30  # the capacity table and the requirements are measured figures
    assert unmeasured_bold_numbers(text, measured_figures()) == []
    plan = capacity()
    assert [s["per_minute"] for s in plan["scenarios"]] == [1_000_000, 10_000_000]
    assert capacity_table_problems(text, plan) == []


def test_the_checks_fail_on_what_they_exist_for():
    doc = ROOT / "docs" / "system-design.md"
    text = ("See `pipeline/graph.py`, `sql/warehouse/no_such_step.sql`, [gone](no-such-doc.md), "
            "`tests/test_docs.py::test_that_does_not_exist` and `output/<type>/YYYY/` (a template).\n"
            "```bash\npython -m warehouse daily\npython -m no_such_module\n./run_dataflow.sh provision\n"
            "./run_dataflow.sh teleport\n```\n")
    assert missing_paths(quoted_paths(doc, text)) == [
        "docs/no-such-doc.md", "sql/warehouse/no_such_step.sql", "tests/test_docs.py::test_that_does_not_exist"]
    assert missing_commands(text) == ["python -m no_such_module", "./run_dataflow.sh teleport"]
    measured = measured_figures()
    assert unmeasured_bold_numbers("runs at **6,821** events/s, not **7,777** nor **41** rounds", measured) == [
        "7,777", "41"]
    swapped = "| n2-standard-2 workers at peak | **25** | **3** |\n| total, $/month | **5,050** | **50,232** |\n"
    problems = capacity_table_problems(swapped, capacity())
    assert problems[:2] == ["n2-standard-2 workers at peak: **25** != 3", "n2-standard-2 workers at peak: **3** != 25"]
    assert "row missing: Pub/Sub" in problems
