"""python -m warehouse: the daily warehouse tables (sql/warehouse/, see
warehouse/__init__.py).

    python -m warehouse daily --project P --dataset D --date 2026-12-06
    python -m warehouse daily --project P --dataset D --from 2026-12-01 --to 2026-12-06
    python -m warehouse daily --project P --dataset D --since 2026-12-05T02:00:00Z
        (every day rows arrived for since then, and the days after it: late data,
        corrections, deletions, a backfill)
    python -m warehouse summary --project P --dataset D      (rows and days per table)
    python -m warehouse scheduled-queries --project P --dataset D [--script]
        the nightly scheduled query run_dataflow.sh provision creates: every step
        in order as one script, for yesterday (deploy/scheduled_queries/)

`daily` builds, for each UTC day in order: the data-quality quarantine and
its report, customer profiles (SCD type 2), products, and the daily sales,
product and user-behaviour tables. Re-running a day is safe and changes
nothing unless its events changed. Exit status 2 on a setup problem, with
what to fix.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

from common.cli import Parser, fail

SCHEDULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "scheduled_queries"
MAX_DAYS = 366


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _since(text: str):
    from schemas.contract import parse_timestamp

    try:
        return parse_timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"--since {text!r} is not an RFC 3339 time (2026-12-05T02:00:00Z)") from None


def build_parser() -> Parser:
    p = Parser("python -m warehouse", __doc__)
    p.add_argument("command", choices=["daily", "summary", "scheduled-queries"], help="what to do (see above)")
    p.add_argument("--project", help="project of the dataset (daily, summary)")
    p.add_argument("--dataset", default="ecommerce", help="dataset (default ecommerce)")
    p.add_argument("--date", help="daily: one UTC day, YYYY-MM-DD")
    p.add_argument("--from", dest="start", help="daily: first UTC day of a range, YYYY-MM-DD")
    p.add_argument("--to", dest="end", help="daily: last UTC day of the range (inclusive)")
    p.add_argument("--since", help="daily: an RFC 3339 time; rebuild the days rows arrived for since then")
    p.add_argument("--script", action="store_true",
                   help="scheduled-queries: print the script alone (default: the line run_dataflow.sh reads)")
    return p


def _days(args) -> list[date]:
    if sum(bool(x) for x in (args.date, args.start or args.end, args.since)) > 1:
        raise ValueError("give one of --date, --from and --to, --since")
    if args.date:
        return [_day(args.date)]
    if args.since:
        return []  # known once BigQuery answers
    if not (args.start and args.end):
        raise ValueError("daily needs --date, --from and --to, or --since")
    start, end = _day(args.start), _day(args.end)
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"{(end - start).days + 1} days: at most {MAX_DAYS} per run")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _scheduled(args) -> int:
    """Print the nightly scheduled query for run_dataflow.sh: display name,
    schedule (deploy/scheduled_queries/warehouse_daily.json) and the
    transfer's params (JSON), tab-separated; or the script alone."""
    from provision import substitute
    from warehouse import scheduled_script

    if not args.project:
        return fail("scheduled-queries needs --project")
    config = json.loads((SCHEDULES_DIR / "warehouse_daily.json").read_text())
    query = substitute(scheduled_script(), args.project, args.dataset)
    if args.script:
        print(query)
        return 0
    print("\t".join([config["display_name"], config["schedule"], json.dumps({"query": query})]))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scheduled-queries":
        return _scheduled(args)
    if not args.project:
        return fail(f"{args.command} needs --project")
    try:
        days = _days(args) if args.command == "daily" else []
        since = _since(args.since) if args.since else None
    except ValueError as err:
        return fail(str(err))
    os.environ.setdefault("NO_GCE_CHECK", "True")
    from google.api_core import exceptions as gexc

    from common import clients
    from warehouse import DAILY_TABLES, VIEWS, affected_days, run_day, summary, summary_line

    try:
        clients.check_services(("bigquery",))
    except clients.SetupError as err:
        return fail(str(err))
    client = clients.bigquery_client(args.project)
    for table in (*DAILY_TABLES, *VIEWS):
        try:
            client.get_table(f"{args.project}.{args.dataset}.{table}", timeout=5, retry=None)
        except gexc.NotFound:
            return fail(f"{args.project}.{args.dataset}.{table} does not exist: python -m provision "
                        f"--project {args.project} --dataset {args.dataset}")
    if args.command == "summary":
        for row in summary(client, args.project, args.dataset):
            print(summary_line(row))
        return 0
    if since is not None:
        days = affected_days(client, args.project, args.dataset, since)
        print(f"rows arrived since {args.since}: " + (f"rebuilding {days[0]} .. {days[-1]} ({len(days)} days)"
                                                      if days else "nothing to rebuild"), flush=True)
    for day in days:
        results = run_day(client, args.project, args.dataset, day)
        print(f"{day}: " + ", ".join(f"{r['table']} {r['changed']} changed" for r in results)
              + f" ({sum(r['seconds'] for r in results):.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
