"""Every command as a user types it: `--help` lists every option with its
help, an unknown option is refused with the closest valid name, and a
missing environment, a stack that is down or missing credentials end the
command in under 10 seconds with one line that says what to fix.

Each case runs the real command in a subprocess with a stripped environment
(no emulator variables, no credentials, HOME without gcloud files)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUB = "projects/local-project/subscriptions/backend-events-topic-sub"
JOB = ["--project=local-project", f"--subscription={SUB}", "--output_prefix=gs://local-bucket/output"]
DATAFLOW = ["--runner=DataflowRunner", "--streaming", "--project=my-project", "--region=europe-west1",
            "--temp_location=gs://my-bucket/tmp", "--subscription=projects/my-project/subscriptions/s-sub",
            "--output_prefix=gs://my-bucket/output"]
COMMANDS = ["pipeline", "localrun", "localstack", "provision", "simulator", "reconcile", "demo", "bench",
            "schemas.ddl", "schemas.compat", "backfill", "deadletters", "simulator.history", "simulator.replay",
            "dashboard", "gdpr", "warehouse", "bench.capacity"]
BACKFILL = ["--project=local-project", "--input=/tmp/history/**", "--output_prefix=gs://local-bucket/output"]


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_EMULATOR_HOST") and k not in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")}
    env.update(HOME=str(tmp_path), NO_GCE_CHECK="True", **extra)
    return env


def down_env(tmp_path) -> dict:
    port = closed_port()
    return bare_env(tmp_path, PUBSUB_EMULATOR_HOST=f"127.0.0.1:{port}",
                    BIGQUERY_EMULATOR_HOST=f"http://127.0.0.1:{port}", STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{port}")


def run(module: str, *args: str, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    return result, time.monotonic() - started


def assert_fails_fast(result, elapsed, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert elapsed < 10, f"took {elapsed:.1f}s"
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr[-2000:])
    return last


@pytest.mark.parametrize("module", COMMANDS)
def test_help_names_the_command_and_explains_every_option(module, tmp_path, monkeypatch):
    result, _ = run(module, "--help", env=bare_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}"), result.stdout[:200]
    assert "__main__.py" not in result.stdout
    for action in _own_actions(module, monkeypatch):
        assert action.help, f"{module}: {action.option_strings or action.dest} has no help text"
        for option in action.option_strings:
            assert option in result.stdout, f"{module} --help does not list {option}"


def _own_actions(module: str, monkeypatch) -> list:
    """The command's own options (Beam's are documented by Beam)."""
    if module in ("pipeline", "localrun", "backfill"):
        from pipeline.options import _option_classes, options_parser

        import backfill.options  # noqa: F401 - registers the backfill's view
        import localrun.options  # noqa: F401 - registers the local-run view
        ours = {s for cls in _option_classes()[0] for s in _own_options(cls)}
        if module != "localrun":
            ours -= set(_own_options(localrun.options.LocalRunOptions))
        if module != "backfill":
            ours -= set(_own_options(backfill.options.BackfillOptions))
        parser = options_parser(f"python -m {module}", "")
        return [a for a in parser._actions if set(a.option_strings) & ours]
    import importlib

    from common.cli import Parser

    seen = []

    def capture(self, args=None, namespace=None):
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(Parser, "parse_args", capture)
    main = importlib.import_module(module if "." in module else f"{module}.__main__").main
    with pytest.raises(SystemExit):
        main(["--help"])
    assert seen, f"{module} does not use common.cli.Parser"
    return [a for a in seen[0]._actions if a.dest != "help"]


def _own_options(cls):
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    cls._add_argparse_args(parser)
    return [s for a in parser._actions for s in a.option_strings]


@pytest.mark.parametrize("module,args,wanted", [
    ("pipeline", [*DATAFLOW, "--alowed_lateness_s=100"], "did you mean --allowed_lateness_s"),
    ("localrun", [*JOB, "--alowed_lateness_s=100"], "did you mean --allowed_lateness_s"),
    ("localrun", [*JOB, "--replay_form=auto"], "did you mean --replay_from"),
    ("simulator", ["--project=local-project", "--duraton=5"], "did you mean --duration"),
    ("reconcile", ["--project=local-project", "--run-di=x"], "did you mean --run-id"),
    ("provision", ["--project=local-project", "--buckt=b"], "did you mean --bucket"),
    ("localstack", ["up", "--pubsub_port=1"], "did you mean --pubsub-port"),
    ("demo", ["--durration=5"], "did you mean --duration"),
    ("backfill", [*BACKFILL, "--run-id=x"], "did you mean --run_id"),
    ("deadletters", ["replay", "--project=local-project", "--error_type=x"], "did you mean --error-type"),
    ("simulator.history", ["--output=/tmp/h", "--day=1"], "did you mean --days"),
    ("dashboard", ["--project=local-project", "--refresh=3"], "did you mean --refresh_s"),
    ("gdpr", ["erase", "--project=local-project", "--user_id=u"], "did you mean --user-id"),
    ("warehouse", ["daily", "--project=local-project", "--dat=2026-12-01"], "did you mean --date"),
])
def test_a_misspelled_option_is_refused_with_the_closest_name(module, args, wanted, tmp_path):
    result, elapsed = run(module, *args, env=down_env(tmp_path))
    assert_fails_fast(result, elapsed, wanted)


def test_a_local_only_option_on_the_dataflow_launcher_points_to_localrun(tmp_path):
    result, elapsed = run("pipeline", *DATAFLOW, "--checkpoint_file=/tmp/c.json", env=bare_env(tmp_path))
    assert_fails_fast(result, elapsed, "--checkpoint_file", "python -m localrun")


def test_the_local_runner_without_the_stack_environment_says_how_to_start_it(tmp_path):
    result, elapsed = run("localrun", *JOB, env=bare_env(tmp_path))
    assert_fails_fast(result, elapsed, "PUBSUB_EMULATOR_HOST", "python -m localstack up")


@pytest.mark.parametrize("module,args", [
    ("localrun", JOB),
    ("simulator", ["--project=local-project", "--count=5"]),
    ("reconcile", ["--project=local-project", "--run-id=x", "--output-prefix=gs://local-bucket/output"]),
    ("provision", ["--project=local-project", "--bucket=local-bucket"]),
    ("backfill", BACKFILL),
    ("deadletters", ["summary", "--project=local-project"]),
    ("dashboard", ["--project=local-project"]),
    ("gdpr", ["erase", "--project=local-project", "--user-id=u"]),
    ("warehouse", ["daily", "--project=local-project", "--date=2026-12-01"]),
])
def test_with_the_emulators_down_each_command_says_so_in_seconds(module, args, tmp_path):
    result, elapsed = run(module, *args, env=down_env(tmp_path))
    assert_fails_fast(result, elapsed, "not answering", "python -m localstack up")


@pytest.mark.parametrize("args,wanted", [
    (["--date=2026-13-01"], "'2026-13-01' is not a date (YYYY-MM-DD)"),
    (["--from=2026-12-05", "--to=2026-12-01"], "--to 2026-12-01 is before --from 2026-12-05"),
    (["--date=2026-12-01", "--to=2026-12-02"], "give one of --date, --from and --to, --since"),
    (["--since=yesterday"], "--since 'yesterday' is not an RFC 3339 time"),
    ([], "daily needs --date, --from and --to, or --since"),
])
def test_the_warehouse_refuses_a_bad_day_before_connecting(args, wanted, tmp_path):
    result, elapsed = run("warehouse", "daily", "--project=local-project", *args, env=down_env(tmp_path))
    assert_fails_fast(result, elapsed, wanted)


def test_the_scheduled_query_is_every_warehouse_step_in_order(tmp_path):
    """What run_dataflow.sh provision reads: name, schedule, and a script of
    every step of sql/warehouse/ in order, for the project and dataset, with
    the schedule's run date in place of the day."""
    import json

    from warehouse import STEPS, SQL_DIR

    result, _ = run("warehouse", "scheduled-queries", "--project=my-project", "--dataset=shop", env=bare_env(tmp_path))
    assert result.returncode == 0, result.stderr
    name, schedule, params = result.stdout.rstrip("\n").split("\t")
    assert (name, schedule) == ("warehouse daily", "every day 02:00")
    query = json.loads(params)["query"]
    assert "${" not in query and "@day" not in query and "@since" not in query
    assert "`my-project.shop.fact_order_events`" in query and query.count("BEGIN TRANSACTION") == 1
    positions = [query.index(f"MERGE `my-project.shop.{table}`") for table, _ in STEPS]
    assert positions == sorted(positions) and len(STEPS) == len(list(SQL_DIR.glob("*.sql")))


def test_the_dataflow_launcher_without_credentials_says_how_to_log_in(tmp_path):
    result, elapsed = run("pipeline", *DATAFLOW, env=bare_env(tmp_path))
    assert_fails_fast(result, elapsed, "no Google credentials", "gcloud auth application-default login")


def test_the_dataflow_launcher_refuses_a_local_runner(tmp_path):
    result, elapsed = run("pipeline", *JOB, "--runner=BundleBasedDirectRunner", env=bare_env(tmp_path))
    assert_fails_fast(result, elapsed, "python -m localrun")


def test_an_emulator_off_loopback_is_refused(tmp_path):
    env = down_env(tmp_path)
    env["PUBSUB_EMULATOR_HOST"] = "10.1.2.3:8085"
    result, elapsed = run("localrun", *JOB, env=env)
    assert_fails_fast(result, elapsed, "127.0.0.1/localhost")


def test_readme_command_1_reaches_the_demo(tmp_path):
    """scripts/demo.sh (README command 1) reaches the demo command. Only the
    wiring is checked here; the paths the demo drives (stack, job, simulator,
    reconciliation) are the end-to-end tests'."""
    env = bare_env(tmp_path)
    env["HOME"] = os.environ.get("HOME", str(tmp_path))  # pip's cache for the bootstrap, if it must install
    result = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: python -m demo")
