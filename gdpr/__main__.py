"""python -m gdpr: erase a data subject everywhere the pipeline keeps them,
and prove it (GDPR, seed 003). Users and customers share one id space.

    python -m gdpr erase --user-id U --project local-project --dataset ecommerce \\
        --output-prefix gs://local-bucket/output [--dry-run]
    python -m gdpr erase --customer-id C ...            (the same id space: --subject-id works too)
    python -m gdpr verify --user-id U --request-id R ...

`erase` first adds the subject to the list the job suppresses, then
rewrites their minute files, corrects the per-minute metrics, deletes their
rows (event tables, alerts, sessions, ledger, dead letters and conflicts whose
payload names them) and logs every step in `erasure_log` (no personal data).
What cannot be done yet (a minute folder the job may still add to, rows in
BigQuery's streaming buffer) is logged as pending: run the same command with
the same --request-id later. `verify` exits 0 only if no table and no
rewritten folder still names the subject. See gdpr/erase.py and README "GDPR".
"""

from __future__ import annotations

import logging
import os
import sys

from common.cli import Parser, fail


def build_parser() -> Parser:
    p = Parser("python -m gdpr", __doc__)
    p.add_argument("command", choices=["erase", "verify"], help="erase the subject, or verify nothing remains")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the data subject, as a user (user_activity.user_id)")
    who.add_argument("--customer-id", help="the data subject, as a customer (order.customer_id)")
    who.add_argument("--subject-id", help="the data subject's id (users and customers share ids)")
    p.add_argument("--project", required=True, help="project of the dataset")
    p.add_argument("--dataset", default="ecommerce", help="dataset (default ecommerce)")
    p.add_argument("--output-prefix", default=None, help="the job's --output_prefix: its minute folders are rewritten")
    p.add_argument("--request-id", default=None,
                   help="the erasure request (default: a new id); give it again to finish what a run left pending")
    p.add_argument("--allowed-lateness-s", type=int, default=180,
                   help="the job's --allowed_lateness_s: folders it may still add to are left for a later run")
    p.add_argument("--settle-s", type=int, default=120,
                   help="seconds after a minute's end plus the allowed lateness before its folder counts as closed "
                        "(the job's watermark can lag the clock; default 120)")
    p.add_argument("--dry-run", action="store_true", help="erase: show what would be removed; change nothing")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    subject = args.user_id or args.customer_id or args.subject_id
    if not subject.strip():
        return fail("the subject's id is empty")
    if args.output_prefix and "://" in args.output_prefix and not args.output_prefix.startswith("gs://"):
        return fail("--output-prefix: gs:// or a local folder")
    if args.command == "verify" and args.output_prefix and not args.request_id:
        return fail("verify with --output-prefix needs --request-id (the folders that request rewrote)")
    os.environ.setdefault("NO_GCE_CHECK", "True")
    from common import clients

    try:
        clients.check_services(("bigquery", "storage") if args.output_prefix else ("bigquery",))
        clients.use_anonymous_beam_credentials()
    except clients.SetupError as err:
        return fail(str(err))
    from google.api_core import exceptions as gexc

    from gdpr.erase import erase, find, verify
    from pipeline.files import FileWriter
    from schemas import ERASED_SUBJECTS_TABLE, ERASURE_LOG_TABLE

    client = clients.bigquery_client(args.project)
    for table in (ERASED_SUBJECTS_TABLE, ERASURE_LOG_TABLE):
        try:
            client.get_table(f"{args.project}.{args.dataset}.{table}", timeout=5, retry=None)
        except gexc.NotFound:
            return fail(f"{args.project}.{args.dataset}.{table} does not exist: python -m provision "
                        f"--project {args.project} --dataset {args.dataset}")
    writer = FileWriter(args.project, clients.storage_client)
    if args.command == "verify":
        left = verify(client, writer, args.project, args.dataset, args.output_prefix, subject, args.request_id)
        for table, n in left["tables"].items():
            print(f"  {table}: {n} rows still name the subject")
        for path, n in left["files"].items():
            print(f"  {path}: {n} lines still the subject's")
        passed = not left["tables"] and not left["files"]
        print("VERIFIED: nothing names the subject" if passed else "NOT ERASED")
        return 0 if passed else 1

    from datetime import datetime, timedelta, timezone

    if args.dry_run:
        plan = find(client, args.project, args.dataset, subject, args.request_id or "dry-run",
                    args.allowed_lateness_s, datetime.now(timezone.utc), timedelta(seconds=args.settle_s))
        for table, n in plan.rows.items():
            print(f"  {table}: {n} rows")
        print(f"  files: {len(plan.folders)} minute folders ({len(plan.open_folders)} still open to late data)")
        print(f"  metrics: {len(plan.metric_cells)} (minute, type) cells to correct")
        print("dry run: nothing changed")
        return 0
    outcome = erase(client, writer, args.project, args.dataset, args.output_prefix, subject, args.request_id,
                    args.allowed_lateness_s, settle=timedelta(seconds=args.settle_s))
    for step, n, details in outcome["log"]:
        print(f"  {step}: {n}" + (f" ({details})" if details and step != "files" else ""))
    if outcome["pending"]:
        print(f"request {outcome['request_id']}: PENDING {outcome['pending'].get('tables', [])} "
              f"{len(outcome['pending'].get('folders', []))} folders; run again with --request-id "
              f"{outcome['request_id']} later")
        print(outcome["request_id"])
        return 3
    print(f"request {outcome['request_id']}: erased")
    print(outcome["request_id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
