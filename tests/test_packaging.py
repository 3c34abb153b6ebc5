"""The worker image and package hold the job and nothing else: pipeline/ and
schemas/, with requirements.txt. The commands (local runner, stack, demo,
simulator, reconciliation, benchmarks) and their libraries stay off workers."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

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


def test_the_source_distribution_workers_install_is_the_job_only(tmp_path):
    """Build the sdist Dataflow stages with --setup_file (and the flex
    template's FLEX_TEMPLATE_PYTHON_SETUP_FILE) from a clean copy of the
    tree, look inside, and run its setup.py as a worker would: it must carry
    requirements.txt (setup.py reads it) and no package but the job's."""
    import shutil
    import subprocess
    import tarfile

    work = tmp_path / "src"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv*", ".local", ".git", "__pycache__", "*.egg-info",
                                                              "build", "dist", ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")], cwd=work, check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    top = {n.split("/")[0] for n in names if n.endswith(".py") and "/" in n}
    assert top == set(JOB_PACKAGES), top
    assert "requirements.txt" in names and "schemas/events/order.avsc" in names
    assert not any(n.startswith("schemas/released/") for n in names)
    # What a worker does with it: run its setup.py (which reads requirements.txt).
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)], cwd=unpacked,
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    (requires,) = tmp_path.glob("*.egg-info/requires.txt")
    wanted = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert requires.read_text().split() == wanted


def test_every_module_a_script_runs_exists():
    """run_dataflow.sh, scripts/ and .ci/ call commands by module name; a
    moved module must not leave a script calling the old name."""
    import importlib.util

    scripts = [ROOT / "run_dataflow.sh", ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]
    modules = {m for path in scripts for m in re.findall(r"-m ([a-z_][a-z_.]*)", path.read_text())} - {"pip", "venv",
                                                                                                       "pytest"}
    assert modules, "no module found: the pattern is wrong"
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert missing == []


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
