"""python -m reconcile: prove a run lost nothing, duplicated nothing and put
every event where its event time says.

    # against the simulator's ledger (a test or demo run)
    python -m reconcile --project local-project --run-id <run> --output-prefix gs://local-bucket/output

    # production, no ledger: BigQuery = the job's files_written = the files, per minute
    python -m reconcile --project my-project --no-ledger --start 2025-02-08T00:00:00Z \\
        --end 2025-02-09T00:00:00Z --output-prefix gs://my-bucket/output [--deep]

Prints a table per check, writes report.json (and report.png with a ledger),
and exits 0 when every check passes, 1 when one fails, 2 on bad arguments or
an unreachable service (said in one line, within seconds).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from common.cli import Parser, fail
from common.clients import SetupError, check_services
from reconcile.checks import FAR_FUTURE, FAR_PAST, Scope, run_all
from reconcile.report import print_results, write_json, write_png
from pipeline.policy import LatenessPolicy
from schemas.contract import ALERT_THRESHOLD


def _ts(text: str) -> datetime:
    from schemas.contract import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> Parser:
    parser = Parser("python -m reconcile", __doc__)
    parser.add_argument("--project", required=True, help="project of the BigQuery dataset")
    parser.add_argument("--dataset", default="ecommerce", help="dataset holding the tables (default ecommerce)")
    parser.add_argument("--run-id", default="", help="one simulator run (default: every run in the range)")
    parser.add_argument("--start", type=_ts, default=None, help="event-time range start (RFC 3339)")
    parser.add_argument("--end", type=_ts, default=None, help="event-time range end, exclusive (RFC 3339)")
    parser.add_argument("--output-prefix", help="the job's --output_prefix, to check the files too")
    parser.add_argument("--alert-threshold", type=int, default=ALERT_THRESHOLD,
                        help=f"the job's --alert_threshold (default {ALERT_THRESHOLD}), for the alerts check")
    parser.add_argument("--allowed-lateness-s", type=int, default=LatenessPolicy.allowed_lateness_s,
                        help=f"the job's --allowed_lateness_s (default {LatenessPolicy.allowed_lateness_s}), for the "
                             "metrics check")
    parser.add_argument("--backfill", action="store_true",
                        help="the run is a backfill (python -m backfill): the stream's own analytics (alerts, "
                             "per-minute metrics) are not checked; everything else is")
    parser.add_argument("--no-ledger", action="store_true",
                        help="production mode: compare BigQuery, the job's files_written and the files per minute "
                             "for --start/--end, without a producer ledger")
    parser.add_argument("--deep", action="store_true",
                        help="with --no-ledger: read every file line, compare identities and content too")
    parser.add_argument("--report-dir", type=Path, default=Path(".local/reports"), help="where report.json goes")
    return parser


def reachable(client, project: str, dataset: str, output_prefix: str | None = None) -> str | None:
    """None, or one line saying which service is unreachable and what to do."""
    import os

    from google.api_core import exceptions as gexc

    if output_prefix and output_prefix.startswith("gs://"):
        from common.clients import storage_client

        bucket = output_prefix[5:].split("/", 1)[0]
        try:
            storage_client(project).get_bucket(bucket, timeout=5, retry=None)
        except gexc.NotFound:
            return f"bucket gs://{bucket} does not exist (check --output-prefix)"
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
            where = os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
            return (f"cannot reach Cloud Storage at {where} ({type(exc).__name__}); is the emulator stack up "
                    "(python -m localstack up; source .local/stack/env.sh)?")

    try:
        client.get_dataset(f"{project}.{dataset}", timeout=5, retry=None)
    except gexc.NotFound:
        return f"BigQuery dataset {project}.{dataset} does not exist (run provisioning, or check --dataset)"
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        where = os.environ.get("BIGQUERY_EMULATOR_HOST") or "bigquery.googleapis.com"
        return (f"cannot reach BigQuery at {where} ({type(exc).__name__}); is the emulator stack up "
                "(python -m localstack up; source .local/stack/env.sh) or are you logged in (gcloud auth "
                "application-default login)?")
    return None


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_ledger and not (args.start and args.end and args.output_prefix):
        parser.error("--no-ledger needs --start, --end and --output-prefix")
    if not args.no_ledger and not args.run_id and not args.start:
        parser.error("give --run-id or --start/--end (or --no-ledger for production)")
    if args.deep and not args.no_ledger:
        parser.error("--deep goes with --no-ledger (the ledger mode always reads every line)")
    start, end = args.start or FAR_PAST, args.end or FAR_FUTURE
    if start >= end:
        parser.error("--start must be before --end")

    from common.clients import bigquery_client

    try:
        check_services(("bigquery", "storage") if (args.output_prefix or "").startswith("gs://") else ("bigquery",))
    except SetupError as err:
        return fail(str(err))
    client = bigquery_client(args.project)
    problem = reachable(client, args.project, args.dataset, args.output_prefix)
    if problem:
        return fail(problem)
    if args.no_ledger:
        from reconcile.no_ledger import run_no_ledger

        outcome = run_no_ledger(client, args.project, args.dataset, args.output_prefix, start, end, deep=args.deep)
        name = f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"
    else:
        scope = Scope(args.run_id, start, end, args.alert_threshold, args.allowed_lateness_s,
                      streaming=not args.backfill)
        outcome = run_all(client, args.project, args.dataset, args.output_prefix, scope)
        name = args.run_id or f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"
    passed = print_results(outcome)
    report_dir = args.report_dir / name
    print(f"report: {write_json(outcome, report_dir / 'report.json', {'run_id': args.run_id, 'start': start.isoformat(), 'end': end.isoformat(), 'no_ledger': args.no_ledger})}")
    if "lag" in outcome:
        print(f"picture: {write_png(outcome, report_dir / 'report.png')}")
    print("RECONCILIATION PASSED" if passed else "RECONCILIATION FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
