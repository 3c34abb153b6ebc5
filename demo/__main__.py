"""README command 1: the whole job end to end on the local stack.

Starts the emulators (fresh data under .local/demo), provisions everything,
starts the streaming job (BundleBasedDirectRunner), runs the simulator with
late, duplicate, malformed and too-late events, waits until every event has
reached BigQuery and its minute folder, stops the job, prints the
reconciliation and says where the data is. The emulators are stopped at the
end, on Ctrl-C and on any error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common.cli import Parser
from localrun.process import start_job, wait_until_running
from localstack.services import PROJECT_ROOT, StackError, stop_pid
from localstack.stack import LocalStack, interrupts_raise
from schemas.contract import SUBSCRIPTION, TOPIC

DATASET, BUCKET = "ecommerce", "local-bucket"


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run_simulator(stack: LocalStack, run_id: str, args, ledger: Path) -> int:
    env = dict(os.environ, **stack.env())
    cmd = [sys.executable, "-m", "simulator", f"--project={stack.project}", f"--topic={TOPIC}",
           f"--rate={args.rate}", f"--duration={args.duration}", f"--seed={args.seed}", f"--run-id={run_id}",
           f"--far-late-fraction={args.far_late_fraction}", f"--ledger={ledger}", f"--load-ledger-dataset={DATASET}",
           "--time-scale=0.5"]
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL).returncode


def wait_for_reconciliation(stack: LocalStack, run_id: str, timeout_s: float, job: subprocess.Popen):
    """Until every event is in BigQuery and in its minute folder (or the
    timeout, or the job died); the last outcome is returned."""
    from common.clients import bigquery_client
    from reconcile.checks import Scope, wait_until_passed

    def say(failing):
        print(f"  waiting for the last minute folders to complete (still failing: {', '.join(failing)}) ...", flush=True)

    return wait_until_passed(bigquery_client(stack.project), stack.project, DATASET, f"gs://{BUCKET}/output",
                             Scope(run_id), timeout_s, keep_waiting=lambda: job.poll() is None, on_wait=say,
                             every_s=10)


def analytics_summary(project: str) -> list[str]:
    """One line per analytics table: what the job wrote."""
    from common.clients import bigquery_client
    from reconcile.checks import query

    client = bigquery_client(project)
    t = lambda name: f"`{project}.{DATASET}.{name}`"  # noqa: E731
    m = query(client, f"SELECT COUNT(*) AS cells, SUM(events) AS events, SUM(late) AS late, SUM(far_late) AS far, "
                      f"SUM(duplicates) AS dups, SUM(dead_letters) AS dead, MIN(minute) AS lo, MAX(minute) AS hi "
                      f"FROM {t('metrics_per_minute_current')}")[0]
    s = query(client, f"SELECT COUNT(*) AS n, COUNTIF(converted) AS converted, AVG(event_count) AS avg_events "
                      f"FROM {t('user_sessions_current')}")[0]
    a = query(client, f"SELECT COUNT(*) AS n FROM {t('alerts_current')}")[0]
    lines = [f"metrics_per_minute_current: {m['cells']} (minute, type) rows, {m['events'] or 0} events, "
             f"{m['late'] or 0} late, {m['far'] or 0} far late, {m['dups'] or 0} duplicates, {m['dead'] or 0} dead "
             f"letters" + (f", minutes {m['lo']:%H:%M}-{m['hi']:%H:%M} UTC" if m["lo"] else ""),
             f"user_sessions_current: {s['n']} closed sessions ({s['converted'] or 0} converted"
             + (f", {s['avg_events']:.1f} events on average)" if s["n"] else ")")
             + " - a session closes 30 minutes after its last event (--session_gap_s)",
             f"alerts_current: {a['n']} alerts"]
    return lines


def warehouse_summary(project: str) -> list[str]:
    """Build the warehouse for the UTC days the run's events fall on (far-late
    events can be days back), then one line per table: rows, date range."""
    from common.clients import bigquery_client
    from reconcile.checks import query
    from warehouse import run_day, summary, summary_line

    client = bigquery_client(project)
    days = [r["day"] for r in query(client, f"SELECT DISTINCT DATE(event_time) AS day "
                                            f"FROM `{project}.{DATASET}.all_events` ORDER BY day")]
    for day in days:
        run_day(client, project, DATASET, day)
    return [summary_line(row) for row in summary(client, project, DATASET)]


def main(argv=None) -> int:
    parser = Parser("python -m demo", __doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of event generation (default 60)")
    parser.add_argument("--rate", type=float, default=5, help="events per second (default 5)")
    parser.add_argument("--seed", type=int, default=42, help="seeds the simulator's catalogue and faults")
    parser.add_argument("--far-late-fraction", type=float, default=0.02,
                        help="events back-dated beyond the job's allowed lateness (they must still land)")
    parser.add_argument("--settle-timeout", type=float, default=300,
                        help="max seconds to wait after the simulator for every minute folder to complete")
    parser.add_argument("--keep", action="store_true", help="leave the emulators running (stop: kill the PIDs shown)")
    parser.add_argument("--dashboard", action="store_true",
                        help="open the live dashboard (python -m dashboard) while the demo runs, print its URL, and "
                             "keep it and the emulators up at the end until Ctrl-C")
    parser.add_argument("--dashboard-port", type=int, default=8050, help="the dashboard's port (default 8050)")
    args = parser.parse_args(argv)

    workdir = PROJECT_ROOT / ".local" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    run_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    stack = LocalStack(workdir=workdir / "stack")
    job = dashboard = None
    try:
        with interrupts_raise():
            _say("starting the local stack (Pub/Sub, BigQuery and Cloud Storage emulators on 127.0.0.1)")
            stack.start()
            stack.apply_env()
            for service in stack.services:
                print(f"  {service.name:9s} pid {service.pid:<7d} port {service.port}")
            _say("provisioning topic, subscription, dataset, tables (partitioned + clustered), views, bucket")
            from provision import provision

            print("  ", provision(stack.project, DATASET, TOPIC, SUBSCRIPTION, BUCKET))
            _say("starting the streaming job (BundleBasedDirectRunner); log: " + str(workdir / "job.log"))
            job = start_job(stack, workdir / "job.log", subscription=SUBSCRIPTION, dataset=DATASET, bucket=BUCKET,
                            extra=[f"--metrics_out={workdir / 'job-metrics.json'}"])
            wait_until_running(job, workdir / "job.log")
            if args.dashboard:
                from dashboard.process import start as start_dashboard, wait_until_serving

                url = f"http://127.0.0.1:{args.dashboard_port}/"
                dashboard = start_dashboard(stack.env(), stack.project, DATASET, args.dashboard_port,
                                            workdir / "dashboard.log")
                wait_until_serving(dashboard, url, workdir / "dashboard.log")
                _say(f"dashboard: {url} (refreshes every 5 s; log {workdir / 'dashboard.log'})")
            _say(f"simulating {args.duration:.0f}s at {args.rate}/s (run {run_id}) in the brief's format: ~10% 30-60s "
                 "late, duplicates, conflicting copies, malformed, unknown fields, some beyond the allowed lateness")
            ledger = workdir / "ledger.jsonl"
            if run_simulator(stack, run_id, args, ledger) != 0:
                print("simulator failed", file=sys.stderr)
                return 1
            _say("waiting until every event is in BigQuery and in its minute folder")
            outcome = wait_for_reconciliation(stack, run_id, args.settle_timeout, job)
            _say("stopping the job")
            stop_pid(job.pid, timeout=30)
            metrics = workdir / "job-metrics.json"
            if metrics.exists():
                print(metrics.read_text())
            _say("reconciliation")
            from reconcile.report import print_results, write_json, write_png

            passed = print_results(outcome)
            report_dir = workdir / "report"
            print(f"  report: {write_json(outcome, report_dir / 'report.json', {'run_id': run_id})}")
            print(f"  picture: {write_png(outcome, report_dir / 'report.png')}")
            _say("where the data is")
            print(f"  files: {stack.gcs_root / BUCKET / 'output'}/<type>/YYYY/MM/DD/HH/mm/*.json")
            print(f"  BigQuery (emulator, stopped now; data kept in {stack.bigquery.workdir / 'bigquery-data'}): "
                  f"{stack.project}.{DATASET}.order_events, inventory_events, user_activity_events, dead_letter, "
                  "conflicts, files_written, producer_ledger; views orders_current, inventory_stock, *_dedup")
            print(f"  ledger: {ledger}\n  job log: {workdir / 'job.log'}")
            _say("streaming analytics")
            for line in analytics_summary(stack.project):
                print("  " + line)
            _say("the daily warehouse (python -m warehouse daily for the run's days; sql/warehouse/)")
            for line in warehouse_summary(stack.project):
                print("  " + line)
            print("\nRECONCILIATION PASSED" if passed else "\nRECONCILIATION FAILED")
            if args.keep:
                print("emulators left running: " + ", ".join(f"{s.name} pid {s.pid}" for s in stack.services))
                print("export " + " ".join(f"{k}={v}" for k, v in stack.env().items()))
            if dashboard is not None:
                _say(f"the dashboard stays up at http://127.0.0.1:{args.dashboard_port}/ ; Ctrl-C stops it and the "
                     "emulators")
                dashboard.wait()
            return 0 if passed else 1
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the job and the emulators", file=sys.stderr)
        return 130
    finally:
        if job is not None and job.poll() is None:
            stop_pid(job.pid, timeout=30)
        if dashboard is not None and dashboard.poll() is None:
            stop_pid(dashboard.pid, timeout=10)
        if not args.keep:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
