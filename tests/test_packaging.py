"""The worker image and package hold the job and nothing else: pipeline/ and
schemas/, with requirements.txt. The commands (local runner, stack, demo,
simulator, reconciliation, benchmarks) and their libraries stay off workers."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent
JOB_PACKAGES = ("pipeline", "schemas")
WORKER_LIBRARIES = {"apache_beam", "google", "fastavro", "orjson", "requests"}
# The schemas' own commands (python -m schemas.ddl / schemas.compat) share the
# project's command-line conventions; they run on a laptop, never on workers.
COMMAND_ONLY = {("schemas/ddl.py", "common"), ("schemas/compat.py", "common")}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_the_package_is_the_job_only():
    packages = setuptools.find_namespace_packages(where=str(ROOT), include=["pipeline", "pipeline.*", "schemas",
                                                                               "schemas.*"], exclude=["schemas.released"])
    setup_py = (ROOT / "setup.py").read_text()
    assert '"pipeline", "pipeline.*", "schemas", "schemas.*"' in setup_py
    assert {p.split(".")[0] for p in packages} == set(JOB_PACKAGES)


def test_the_job_imports_only_the_job_and_its_worker_libraries():
    allowed = set(JOB_PACKAGES) | WORKER_LIBRARIES | set(sys.stdlib_module_names)
    wrong = []
    for package in JOB_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            wrong += [f"{rel}: {name}" for name in _imports(path)
                      if name not in allowed and (rel, name) not in COMMAND_ONLY]
    assert wrong == []


def test_worker_requirements_hold_no_tool_library_and_the_image_copies_only_the_job():
    requirements = (ROOT / "requirements.txt").read_text()
    for library in ("rich", "matplotlib", "pytest", "hypothesis", "fake-gcs"):
        assert not re.search(rf"^{library}", requirements, re.M), library
    copied = re.findall(r"^COPY (?!--from)(.+?) \./?(\S*)$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {s for line, _ in copied for s in line.split()}
    assert sources == {"requirements.txt", "setup.py", "main.py", "pipeline", "schemas"}, sources
