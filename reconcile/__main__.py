"""python -m reconcile: prove a run lost nothing, duplicated nothing and put
every event where its event time says.

    python -m reconcile --project local-project --dataset ecommerce \\
        --run-id <run> --output-prefix gs://local-bucket/output --report-dir .local/reports

Prints a table per check, writes report.json and report.png, and exits 1 if
any check fails (2 on bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from reconcile.checks import FAR_FUTURE, FAR_PAST, Scope, run_all
from reconcile.report import print_results, write_json, write_png


def _ts(text: str) -> datetime:
    from pipeline.validation import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconcile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--dataset", default="ecommerce")
    parser.add_argument("--run-id", default="", help="one simulator run (default: every run in the range)")
    parser.add_argument("--start", type=_ts, default=FAR_PAST, help="event-time range start (RFC 3339)")
    parser.add_argument("--end", type=_ts, default=FAR_FUTURE, help="event-time range end, exclusive")
    parser.add_argument("--output-prefix", help="the job's --output_prefix, to check the files too")
    parser.add_argument("--after-replay", action="store_true",
                        help="the job was recovered by replaying the subscription: events in two files of their "
                             "own minute folder are reported, not failed")
    parser.add_argument("--report-dir", type=Path, default=Path(".local/reports"))
    args = parser.parse_args(argv)
    if not args.run_id and args.start == FAR_PAST:
        parser.error("give --run-id or --start/--end")

    from pipeline.clients import bigquery_client

    client = bigquery_client(args.project)
    scope = Scope(args.run_id, args.start, args.end)
    outcome = run_all(client, args.project, args.dataset, args.output_prefix, scope, args.after_replay)
    passed = print_results(outcome)
    name = args.run_id or f"{args.start:%Y%m%dT%H%M}-{args.end:%Y%m%dT%H%M}"
    report_dir = args.report_dir / name
    json_path = write_json(outcome, report_dir / "report.json", scope)
    png_path = write_png(outcome, report_dir / "report.png")
    print(f"report: {json_path}\npicture: {png_path}")
    print("RECONCILIATION PASSED" if passed else "RECONCILIATION FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
