"""python -m simulator.replay: republish a historical data set into Pub/Sub
at N times its own speed, with a ledger: to rehearse load and late data at
scale against the streaming job (not a way to load history: that is
`python -m backfill`, which writes no Pub/Sub traffic and keeps no ledger of
its own).

    python -m simulator.replay --project local-project --input 's3://local-history/events/**' \\
        --speed 600 --run-id rehearsal-1 --load-ledger-dataset ecommerce

Records are read with the backfill's reader (`pipeline.backfill.records_of`:
JSON lines or arrays, gzip or plain) and published in event-time order, the
gap between two events divided by --speed (a record with no readable event
time goes with the record before it). Bodies are sent as they are in the
files, without attributes, as the brief's producer does. The ledger has one
line per published copy; its events are days old for the job, so every one
of them is far late: the job puts each in its minute folder after reading the
folder back.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson

from common.cli import Parser, fail
from schemas.contract import TOPIC, format_timestamp, parse_timestamp, split_body
from simulator.faults import Message, Plan, plan_of_body
from simulator.ledger import LedgerWriter, load_to_bigquery

_log = logging.getLogger(__name__)


def plan_of_record(data: bytes) -> Plan:
    """The ledger's Plan of one historical record: the contract's identity
    for a valid event, `malformed` (found again by its sha256 in the
    dead-letter table) for anything the job must refuse."""
    from pipeline.validation import Limits, Rejected, parse_message

    try:
        parse_message(data, None, None, now=datetime.now(timezone.utc), limits=Limits(max_event_age=None))
    except Rejected as rejection:
        return Plan(event_type=rejection.claimed_type or "unknown", event_time=_claimed_time(data),
                    messages=[Message(data, {}, 0.0)], intended_delay_s=0.0,
                    payload_sha256=hashlib.sha256(data).hexdigest(), malformed=True,
                    malformed_kind=rejection.error_type)
    return plan_of_body(data)


def _claimed_time(data: bytes) -> str:
    """Some time for a malformed record's ledger row (its event_time column is
    required): the body's own if it has one, else now."""
    try:
        payload, _, _ = split_body(orjson.loads(data))
        for name in ("updated_at", "order_date", "timestamp"):
            if isinstance(payload.get(name), str):
                return format_timestamp(parse_timestamp(payload[name]))
    except Exception:  # noqa: BLE001 - malformed on purpose
        pass
    return format_timestamp(datetime.now(timezone.utc))


def schedule(records: list[bytes]) -> list[tuple[float, bytes, Plan]]:
    """(seconds after the first event, data, plan) in event-time order; a
    record without a usable time keeps the place of the one before it."""
    planned, last = [], None
    for data in records:
        p = plan_of_record(data)
        try:
            at = parse_timestamp(p.event_time).timestamp() if not p.malformed or last is None else last
        except Exception:  # noqa: BLE001
            at = last or 0.0
        last = at
        planned.append((at, data, p))
    planned.sort(key=lambda item: item[0])
    first = planned[0][0] if planned else 0.0
    return [(at - first, data, p) for at, data, p in planned]


def build_parser() -> Parser:
    p = Parser("python -m simulator.replay", __doc__)
    p.add_argument("--project", required=True, help="GCP project of the topic (local-project on the emulator)")
    p.add_argument("--topic", default=TOPIC, help=f"Pub/Sub topic (default {TOPIC})")
    p.add_argument("--input", action="append", required=True, help="history file pattern (s3://, gs://, local); repeat")
    p.add_argument("--speed", type=float, default=60.0, help="times real time (default 60: an hour in a minute)")
    p.add_argument("--run-id", default=None, help="ledger run id (default: a new id)")
    p.add_argument("--ledger", type=Path, default=None, help="ledger JSONL path (default .local/ledger/<run>.jsonl)")
    p.add_argument("--load-ledger-dataset", default=None, help="load the ledger into <dataset>.producer_ledger")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.speed <= 0:
        return fail("--speed must be positive")
    from apache_beam.io.filesystems import FileSystems

    from common import clients
    from pipeline.backfill import records_of

    try:
        clients.check_services(("pubsub", "bigquery") if args.load_ledger_dataset else ("pubsub",))
        if any(i.startswith("s3://") for i in args.input):
            clients.check_s3()
    except clients.SetupError as err:
        return fail(str(err))
    clients.filesystem_options()
    paths = []
    for pattern in args.input:
        found = FileSystems.match([pattern])[0].metadata_list
        if not found:
            return fail(f"--input matches no file: {pattern}")
        paths += sorted(m.path for m in found)
    records = [data for path in paths for _, data in records_of(path)]
    planned = schedule(records)
    run_id = args.run_id or f"replay-{uuid.uuid4().hex[:10]}"
    ledger_path = args.ledger or Path(".local/ledger") / f"{run_id}.jsonl"
    ledger = LedgerWriter(ledger_path)
    publisher = clients.publisher_client()
    topic = publisher.topic_path(args.project, args.topic)
    span = planned[-1][0] if planned else 0.0
    print(f"run {run_id}: {len(planned)} records from {len(paths)} files, {span / 3600:.1f} h of event time "
          f"in {span / args.speed:.0f} s (x{args.speed:g}) to {topic}", file=sys.stderr)
    started = time.monotonic()
    pending = []
    for offset, data, p in planned:
        wait = started + offset / args.speed - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the replay's own pace, not a synchronisation
        published_at = format_timestamp(datetime.now(timezone.utc))
        pending.append((p, published_at, publisher.publish(topic, data)))
    failed = 0
    for p, published_at, future in pending:
        try:
            future.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - counted and said; not in the ledger
            failed += 1
            _log.error("publish failed: %s", exc)
            continue
        ledger.record_copy(run_id, p, 0, published_at, confirmed_time=format_timestamp(datetime.now(timezone.utc)))
    ledger.close()
    print(f"published {len(pending) - failed} of {len(pending)} in {time.monotonic() - started:.1f}s; ledger "
          f"{ledger_path}", file=sys.stderr)
    if args.load_ledger_dataset:
        rows = load_to_bigquery(ledger_path, args.project, args.load_ledger_dataset)
        print(f"loaded {rows} ledger rows into {args.load_ledger_dataset}.producer_ledger", file=sys.stderr)
    print(run_id)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
