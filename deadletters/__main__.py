"""python -m deadletters: look at the dead-letter table, and republish chosen
dead letters to the topic once their cause is fixed (a schema that now
accepts them, a limit raised, a producer bug understood).

    python -m deadletters summary --project local-project --dataset ecommerce
    python -m deadletters replay --project local-project --dataset ecommerce \\
        --error-type schema_mismatch --since 2026-12-01T00:00:00Z --note "status cancelled added" --dry-run
    python -m deadletters replay ... (the same without --dry-run)

`replay` selects rows by stage, reason (error_type), received time, claimed
event type and dead_letter_id; publishes each with its original bytes and
attributes (the job then treats it like any message: a fixed one lands, one
still wrong is dead-lettered again, under a new reason if it has one); and
records each publish in `dead_letter_replays`, so running the same replay
again publishes nothing (`--again` overrides). A row whose payload was cut
(larger than the 1 MiB the table keeps) or that BigQuery refused
(stage bigquery_insert: its payload is the row, not the message) cannot be
replayed and is listed as such. If the command dies between a publish and
its record, that message can go out twice: the job drops the copy as a
duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import uuid
from datetime import datetime, timezone

from common.cli import Parser, fail
from schemas import DEAD_LETTER_TABLE
from schemas.contract import TOPIC, format_timestamp

_log = logging.getLogger("deadletters")
REPLAYS_TABLE = "dead_letter_replays"
NOT_REPLAYABLE_STAGES = ("bigquery_insert",)


def _ts(text: str) -> datetime:
    from schemas.contract import parse_timestamp

    try:
        return parse_timestamp(text)
    except Exception:  # noqa: BLE001 - argparse shows this message
        import argparse

        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None


def build_parser() -> Parser:
    p = Parser("python -m deadletters", __doc__)
    p.add_argument("command", choices=["summary", "replay"], help="summary: counts by stage and reason; "
                                                                   "replay: republish the selected rows")
    p.add_argument("--project", required=True, help="project of the dataset (and of the topic)")
    p.add_argument("--dataset", default="ecommerce", help="dataset holding dead_letter (default ecommerce)")
    p.add_argument("--topic", default=None, help=f"where to republish (default projects/<project>/topics/{TOPIC})")
    p.add_argument("--stage", action="append", default=[], help="only this stage (decode, parse, validate, read); repeat")
    p.add_argument("--error-type", action="append", default=[], help="only this reason (error_type); repeat")
    p.add_argument("--event-type", action="append", default=[], help="only rows claiming this event type; repeat")
    p.add_argument("--id", action="append", default=[], dest="ids", help="only this dead_letter_id; repeat")
    p.add_argument("--since", type=_ts, default=None, help="received at or after (RFC 3339)")
    p.add_argument("--until", type=_ts, default=None, help="received before (RFC 3339)")
    p.add_argument("--note", default=None, help="what was fixed (recorded with each replay)")
    p.add_argument("--dry-run", action="store_true", help="show what would be republished; publish nothing")
    p.add_argument("--again", action="store_true", help="also rows an earlier replay already republished")
    p.add_argument("--limit", type=int, default=100_000, help="at most this many rows (default 100000)")
    return p


def _params(args) -> dict:
    far_past, far_future = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc)
    return {"stages": args.stage, "reasons": args.error_type, "types": args.event_type, "ids": args.ids,
            "since": args.since or far_past, "until": args.until or far_future}


def select_sql(project: str, dataset: str, again: bool, limit: int) -> str:
    """The selected dead letters, one row per dead_letter_id, oldest first,
    with `replayed` (an earlier replay published it)."""
    d = f"`{project}.{dataset}"
    return f"""
WITH chosen AS (
  SELECT *
  FROM {d}.{DEAD_LETTER_TABLE}`
  WHERE received_at >= @since AND received_at < @until
    AND (ARRAY_LENGTH(@stages) = 0 OR stage IN UNNEST(@stages))
    AND (ARRAY_LENGTH(@reasons) = 0 OR error_type IN UNNEST(@reasons))
    AND (ARRAY_LENGTH(@types) = 0 OR event_type IN UNNEST(@types))
    AND (ARRAY_LENGTH(@ids) = 0 OR dead_letter_id IN UNNEST(@ids))
  QUALIFY ROW_NUMBER() OVER (PARTITION BY dead_letter_id ORDER BY received_at) = 1
)
SELECT c.*, c.dead_letter_id IN (SELECT dead_letter_id FROM {d}.{REPLAYS_TABLE}`) AS replayed
FROM chosen AS c
{'' if again else f'WHERE c.dead_letter_id NOT IN (SELECT dead_letter_id FROM {d}.{REPLAYS_TABLE}`)'}
ORDER BY c.received_at, c.dead_letter_id
LIMIT {int(limit)}"""


def message_of(row: dict) -> tuple[bytes, dict] | str:
    """(original bytes, attributes) of a dead letter, or why it cannot be replayed."""
    if row["stage"] in NOT_REPLAYABLE_STAGES:
        return f"stage {row['stage']}: its payload is the BigQuery row, not the message"
    data = base64.b64decode(row["payload_base64"]) if row.get("payload_base64") else (row.get("payload") or "").encode()
    if len(data) != row["payload_size"] or hashlib.sha256(data).hexdigest() != row["payload_sha256"]:
        return f"payload kept only in part ({len(data)} of {row['payload_size']} bytes)"
    attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    return data, {str(k): str(v) for k, v in attributes.items()}


def _query(client, sql: str, params: dict) -> list[dict]:
    from google.cloud import bigquery

    config = []
    for name, value in params.items():
        if isinstance(value, list):
            config.append(bigquery.ArrayQueryParameter(name, "STRING", value))
        else:
            config.append(bigquery.ScalarQueryParameter(name, "TIMESTAMP", value))
    job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=config))
    return [dict(r.items()) for r in job.result(timeout=300)]


def summary(client, project: str, dataset: str, params: dict) -> list[dict]:
    sql = f"""
SELECT stage, error_type, COUNT(DISTINCT dead_letter_id) AS dead_letters,
       COUNT(DISTINCT IF(dead_letter_id IN (SELECT dead_letter_id FROM `{project}.{dataset}.{REPLAYS_TABLE}`),
                         dead_letter_id, NULL)) AS replayed,
       MIN(received_at) AS first, MAX(received_at) AS last, ANY_VALUE(error) AS example
FROM `{project}.{dataset}.{DEAD_LETTER_TABLE}`
WHERE received_at >= @since AND received_at < @until
  AND (ARRAY_LENGTH(@stages) = 0 OR stage IN UNNEST(@stages))
  AND (ARRAY_LENGTH(@reasons) = 0 OR error_type IN UNNEST(@reasons))
  AND (ARRAY_LENGTH(@types) = 0 OR event_type IN UNNEST(@types))
  AND (ARRAY_LENGTH(@ids) = 0 OR dead_letter_id IN UNNEST(@ids))
GROUP BY stage, error_type
ORDER BY dead_letters DESC, stage, error_type"""
    return _query(client, sql, params)


def replay(client, publisher, project: str, dataset: str, topic: str, rows: list[dict], note: str | None) -> dict:
    """Publish each replayable row, then record what was published. Returns
    {published, skipped: [(id, why)], replay_id}."""
    replay_id = f"replay-{uuid.uuid4().hex[:12]}"
    sent, skipped = [], []
    for row in rows:
        message = message_of(row)
        if isinstance(message, str):
            skipped.append((row["dead_letter_id"], message))
            continue
        data, attributes = message
        sent.append((row, publisher.publish(topic, data, **attributes)))
    records = []
    for row, future in sent:
        message_id = future.result(timeout=60)
        records.append({
            "replay_row_id": hashlib.sha256(f"{replay_id}\x00{row['dead_letter_id']}".encode()).hexdigest()[:40],
            "replay_id": replay_id, "dead_letter_id": row["dead_letter_id"],
            "replayed_at": format_timestamp(datetime.now(timezone.utc)), "topic": topic, "message_id": message_id,
            "stage": row["stage"], "error_type": row["error_type"], "reason_for_replay": note,
        })
    table = f"{project}.{dataset}.{REPLAYS_TABLE}"
    for start in range(0, len(records), 500):
        batch = records[start:start + 500]
        errors = client.insert_rows_json(table, batch, row_ids=[r["replay_row_id"] for r in batch])
        if errors:
            raise RuntimeError(f"recording the replay in {table} failed: {errors[:3]}")
    return {"published": len(records), "skipped": skipped, "replay_id": replay_id}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.limit < 1:
        return fail("--limit must be at least 1")
    from common import clients

    try:
        clients.check_services(("bigquery", "pubsub") if args.command == "replay" and not args.dry_run
                               else ("bigquery",))
    except clients.SetupError as err:
        return fail(str(err))
    client = clients.bigquery_client(args.project)
    from google.api_core import exceptions as gexc

    try:
        client.get_table(f"{args.project}.{args.dataset}.{REPLAYS_TABLE}", timeout=5, retry=None)
    except gexc.NotFound:
        return fail(f"{args.project}.{args.dataset}.{REPLAYS_TABLE} does not exist: python -m provision "
                    f"--project {args.project} --dataset {args.dataset}")
    params = _params(args)
    if args.command == "summary":
        rows = summary(client, args.project, args.dataset, params)
        print(f"{'stage':<16} {'error_type':<28} {'dead letters':>12} {'replayed':>9}  example")
        for r in rows:
            print(f"{r['stage']:<16} {r['error_type']:<28} {r['dead_letters']:>12,} {r['replayed']:>9,}  "
                  f"{(r['example'] or '')[:80]}")
        return 0

    rows = _query(client, select_sql(args.project, args.dataset, args.again, args.limit), params)
    replayable = [r for r in rows if not isinstance(message_of(r), str)]
    by_reason: dict = {}
    for r in rows:
        by_reason[(r["stage"], r["error_type"])] = by_reason.get((r["stage"], r["error_type"]), 0) + 1
    print(f"{len(rows)} dead letters selected, {len(replayable)} replayable"
          + ("" if args.again else " (rows an earlier replay published are left out; --again includes them)"))
    for (stage, reason), n in sorted(by_reason.items()):
        print(f"  {stage}/{reason}: {n}")
    for r in rows[:5]:
        why = message_of(r)
        print(f"  e.g. {r['dead_letter_id']} received {r['received_at']:%Y-%m-%d %H:%M:%S}: "
              f"{(r['error'] or '')[:100]}" + (f" [not replayable: {why}]" if isinstance(why, str) else ""))
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    if not replayable:
        print("nothing to publish")
        return 0
    topic = args.topic or f"projects/{args.project}/topics/{TOPIC}"
    outcome = replay(client, clients.publisher_client(), args.project, args.dataset, topic, rows, args.note)
    print(f"replay {outcome['replay_id']}: published {outcome['published']} to {topic}; recorded in "
          f"{args.dataset}.{REPLAYS_TABLE}" + (f"; {len(outcome['skipped'])} not replayable" if outcome["skipped"]
                                               else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
