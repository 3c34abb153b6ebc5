"""python -m provision: create the topic, subscription, dataset, tables, views
and bucket the job needs, idempotently (see provision/__init__.py).

    python -m provision --project local-project --bucket local-bucket       # local stack (env.sh sourced)
    python -m provision --project my-project --bucket my-bucket --tables-via ddl
    python -m provision --project my-project --update-schemas                # after a compatible schema change
"""

from __future__ import annotations

import logging
import sys

from common.cli import Parser, fail
from common.clients import SetupError, bigquery_client, check_services
from provision import provision, update_table_schemas
from schemas.contract import SUBSCRIPTION, TOPIC


def build_parser() -> Parser:
    parser = Parser("python -m provision", __doc__)
    parser.add_argument("--project", required=True, help="the Google Cloud project (local stack: local-project)")
    parser.add_argument("--dataset", default="ecommerce", help="BigQuery dataset to create (default ecommerce)")
    parser.add_argument("--topic", default=TOPIC, help=f"Pub/Sub topic (default {TOPIC}, the brief's)")
    parser.add_argument("--subscription", default=SUBSCRIPTION, help=f"subscription of the job (default {SUBSCRIPTION})")
    parser.add_argument("--bucket", help="Cloud Storage bucket for the minute files (none: no bucket is created)")
    parser.add_argument("--location", default="US", help="location of the dataset and the bucket (default US)")
    parser.add_argument("--tables-via", choices=["api", "ddl"], default="api",
                        help="create tables through the API (default; the emulator keeps partitioning only this "
                             "way) or by running ddl/tables/*.sql (what real BigQuery gets from run_dataflow.sh)")
    parser.add_argument("--update-schemas", action="store_true",
                        help="only bring existing tables up to schemas/ (new optional fields, relaxed modes)")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        check_services(("bigquery",) if args.update_schemas else
                       ("pubsub", "bigquery", "storage") if args.bucket else ("pubsub", "bigquery"))
    except SetupError as err:
        return fail(str(err))
    if args.update_schemas:
        print(update_table_schemas(bigquery_client(args.project), args.project, args.dataset) or "nothing to change")
        return 0
    result = provision(args.project, args.dataset, args.topic, args.subscription, args.bucket, args.tables_via,
                       args.location)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
