"""python -m simulator.history: write a historical data set of the brief's
events (seed 004: history is JSON in S3) for the backfill, with its ledger.

    python -m simulator.history --output s3://local-history/events --days 2 --events-per-hour 120 \\
        --run-id history-1 --load-ledger-dataset ecommerce --project local-project

Hours of events from the same world as the live simulator (orders move
through their statuses, stock moves, users browse), across day boundaries,
written one folder per hour:

    <output>/YYYY/MM/DD/HH/events.jsonl[.gz]   newline-delimited JSON
    <output>/YYYY/MM/DD/HH/events.json[.gz]    one JSON array

(gzip on odd hours), with the faults a real export has: duplicated records
(again in the next hour's file), conflicting copies (the same identity with
another content), malformed records (invalid JSON and non-UTF-8 only in the
line files, where a line can hold them), and fields the schema does not know.
The ledger (JSONL, then producer_ledger) has one line per record written, in
the order written: what the backfill must load, and what
`python -m reconcile --run-id <run> --backfill` checks.
"""

from __future__ import annotations

import gzip
import logging
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common.cli import Parser, fail
from schemas.contract import format_timestamp
from simulator.faults import FaultConfig, plan
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import DEFAULT_MIX
from simulator.world import World

_log = logging.getLogger(__name__)
NOT_JSON = {"invalid_json", "not_utf8"}  # a JSON array cannot hold these records


@dataclass
class HourFiles:
    """The records of one hour's two files: (plan, copy number, bytes)."""

    start: datetime
    lines: list = field(default_factory=list)
    array: list = field(default_factory=list)


def history_faults(duplicate_fraction=0.03, conflict_fraction=0.01, malformed_fraction=0.02,
                   extra_field_fraction=0.02) -> FaultConfig:
    """The live simulator's faults without publish delays (history has no
    publish): duplicates, conflicts, malformed records, unknown fields."""
    cfg = FaultConfig(late_fraction=0.0, far_late_fraction=0.0, duplicate_fraction=duplicate_fraction,
                      conflict_fraction=conflict_fraction, malformed_fraction=malformed_fraction,
                      extra_field_fraction=extra_field_fraction)
    cfg.validate()
    return cfg


def generate(start: datetime, hours: int, events_per_hour: int, faults: FaultConfig, seed: int = 0,
             mix: dict | None = None) -> list[HourFiles]:
    """Every hour's records, in the order they are written. A duplicate copy
    and a conflicting copy go to the next hour's files (the last hour keeps
    them), after the original."""
    rng = random.Random(seed)
    world = World(seed=seed)
    mix = mix or dict(DEFAULT_MIX)
    out = [HourFiles(start + timedelta(hours=h)) for h in range(hours)]
    step = 3600 / events_per_hour
    for h in range(hours):
        for i in range(events_per_hour):
            now = start + timedelta(hours=h, seconds=i * step + rng.uniform(0, step))
            event_type = rng.choices(list(mix), weights=list(mix.values()))[0]
            plans = plan(world.next_event(event_type, now), faults, rng)
            for p in plans:
                for copy_no, message in enumerate(p.messages):
                    later = p.conflict or copy_no > 0
                    target = out[min(h + 1, hours - 1)] if later else out[h]
                    as_line = p.malformed_kind in NOT_JSON or rng.random() < 0.5
                    (target.lines if as_line else target.array).append((p, copy_no, message.data))
    return out


def _paths(output: str, hour: HourFiles, index: int) -> tuple[str, str]:
    folder = f"{output.rstrip('/')}/{hour.start:%Y/%m/%d/%H}"
    gz = ".gz" if index % 2 else ""
    return f"{folder}/events.jsonl{gz}", f"{folder}/events.json{gz}"


def _write(path: str, data: bytes) -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    from common.clients import filesystem_options

    filesystem_options()
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with FileSystems.create(path, mime_type="application/octet-stream",
                            compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(data)


def write_history(output: str, hours: list[HourFiles], ledger: LedgerWriter, run_id: str) -> dict:
    """Write every hour's files and record each record in the ledger (its
    write time as its publish time: the order the backfill keeps copies in)."""
    files = records = 0
    for index, hour in enumerate(hours):
        line_path, array_path = _paths(output, hour, index)
        # The array file first: its name sorts first ("events.json" < "events.jsonl"), and the backfill keeps
        # the first copy of an event in the order of file names and lines; the ledger's order is the same.
        for path, items, array in ((array_path, hour.array, True), (line_path, hour.lines, False)):
            if not items:
                continue
            if array:
                data = b"[\n" + b",\n".join(data for _, _, data in items) + b"\n]\n"
            else:
                data = b"".join(data + b"\n" for _, _, data in items)
            _write(path, data)
            written_at = datetime.now(timezone.utc)
            for n, (p, copy_no, _) in enumerate(items):
                at = format_timestamp(written_at + timedelta(microseconds=n))
                ledger.record_copy(run_id, p, copy_no, at, confirmed_time=at)
            files += 1
            records += len(items)
    return {"files": files, "records": records}


def build_parser() -> Parser:
    p = Parser("python -m simulator.history", __doc__)
    p.add_argument("--output", required=True, help="where: s3://bucket/prefix, gs://bucket/prefix or a local folder")
    p.add_argument("--days", type=float, default=2.0, help="days of history, ending at the last full hour (default 2)")
    p.add_argument("--events-per-hour", type=int, default=120, help="logical events per hour (default 120)")
    p.add_argument("--seed", type=int, default=0, help="seeds the world and the faults")
    p.add_argument("--run-id", default=None, help="ledger run id (default: a new id)")
    p.add_argument("--ledger", type=Path, default=None, help="ledger JSONL path (default .local/ledger/<run>.jsonl)")
    p.add_argument("--duplicate-fraction", type=float, default=0.03, help="records written twice")
    p.add_argument("--conflict-fraction", type=float, default=0.01, help="identities written again with another content")
    p.add_argument("--malformed-fraction", type=float, default=0.02, help="malformed records")
    p.add_argument("--extra-field-fraction", type=float, default=0.02, help="records with a field the schema does not know")
    p.add_argument("--project", default=None, help="project of the ledger's dataset (with --load-ledger-dataset)")
    p.add_argument("--load-ledger-dataset", default=None, help="load the ledger into <dataset>.producer_ledger")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if not 0 < args.days <= 366 or args.events_per_hour < 1:
        return fail("--days must be in (0, 366] and --events-per-hour at least 1")
    if args.load_ledger_dataset and not args.project:
        return fail("--load-ledger-dataset needs --project")
    if "://" in args.output and not args.output.startswith(("s3://", "gs://")):
        return fail(f"--output {args.output!r}: s3://, gs:// or a local folder")
    try:
        faults = history_faults(args.duplicate_fraction, args.conflict_fraction, args.malformed_fraction,
                                args.extra_field_fraction)
    except ValueError as err:
        return fail(str(err))
    from common import clients

    try:
        if args.output.startswith("s3://"):
            clients.check_s3()
        if args.output.startswith("gs://"):
            clients.check_services(("storage",))
            clients.use_anonymous_beam_credentials()
        if args.load_ledger_dataset:
            clients.check_services(("bigquery",))
    except clients.SetupError as err:
        return fail(str(err))
    run_id = args.run_id or f"history-{uuid.uuid4().hex[:10]}"
    ledger_path = args.ledger or Path(".local/ledger") / f"{run_id}.jsonl"
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = max(1, round(args.days * 24))
    start = end - timedelta(hours=hours)
    ledger = LedgerWriter(ledger_path)
    written = write_history(args.output, generate(start, hours, args.events_per_hour, faults, args.seed), ledger,
                            run_id)
    ledger.close()
    print(f"run {run_id}: {written['records']} records in {written['files']} files under {args.output} "
          f"({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC); ledger {ledger_path}", file=sys.stderr)
    if args.load_ledger_dataset:
        rows = load_to_bigquery(ledger_path, args.project, args.load_ledger_dataset)
        print(f"loaded {rows} ledger rows into {args.load_ledger_dataset}.producer_ledger", file=sys.stderr)
    print(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
