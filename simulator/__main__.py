"""python -m simulator: publish e-commerce events to Pub/Sub in real time.

Messages follow the brief (seed 004): the JSON body alone with event_type
inside, uuid ids, no Pub/Sub attributes (--attributes adds the optional
event_type / event_id / event_time hints).

Examples:
    python -m simulator --project local-project --duration 120
    python -m simulator --project local-project --rate 500 --count 20000 --seed 7 \\
        --far-late-fraction 0.01 --load-ledger-dataset ecommerce

Every published copy is recorded in the ledger (JSONL, one line per copy);
--load-ledger-dataset also loads it into BigQuery's producer_ledger.
Ctrl-C stops generating and publishes everything still held back.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import uuid
from pathlib import Path

from common.cli import Parser, fail
from schemas.contract import TOPIC
from simulator.faults import FaultConfig
from simulator.ledger import LedgerWriter, load_to_bigquery
from simulator.runner import DEFAULT_MIX, Simulator


def parse_mix(text: str) -> dict:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in DEFAULT_MIX:
            raise argparse.ArgumentTypeError(f"unknown event type {name!r} in --mix (use {', '.join(DEFAULT_MIX)})")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name} in --mix is not a number: {weight!r}") from None
    if not mix or sum(mix.values()) <= 0 or any(v < 0 for v in mix.values()):
        raise argparse.ArgumentTypeError("--mix needs non-negative weights with a positive sum")
    return mix


def build_parser() -> Parser:
    p = Parser("python -m simulator", __doc__)
    p.add_argument("--project", required=True, help="GCP project of the topic (local-project on the emulator)")
    p.add_argument("--topic", default=TOPIC, help=f"Pub/Sub topic (default: the brief's {TOPIC})")
    p.add_argument("--rate", type=float, default=1.0, help="events per second (default 1)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="seconds of generation (default 60 when no --count)")
    stop.add_argument("--count", type=int, help="number of logical events to generate")
    p.add_argument("--mix", type=parse_mix, default=dict(DEFAULT_MIX),
                   help="event type weights, e.g. order=0.3,inventory=0.3,user_activity=0.4")
    p.add_argument("--seed", type=int, default=0, help="seeds the catalogue and the faults (ids are always new)")
    p.add_argument("--run-id", default=None, help="ledger run id (default: a new uuid)")
    p.add_argument("--ledger", type=Path, default=None, help="ledger JSONL path (default .local/ledger/<run>.jsonl)")
    p.add_argument("--attributes", action="store_true",
                   help="also publish the optional attributes event_type, event_id (a uuid per event) and event_time")
    p.add_argument("--strict-brief", action="store_true",
                   help="publish only the brief's fields (no updated_at, no metadata.product_id extensions)")
    p.add_argument("--late-fraction", type=float, default=0.10, help="events published 30-60 s late")
    p.add_argument("--late-min", type=float, default=30.0, help="shortest delay of a late event, seconds")
    p.add_argument("--late-max", type=float, default=60.0, help="longest delay of a late event, seconds")
    p.add_argument("--duplicate-fraction", type=float, default=0.03, help="events published twice")
    p.add_argument("--conflict-fraction", type=float, default=0.01,
                   help="events followed by a copy with the same identity and another content")
    p.add_argument("--malformed-fraction", type=float, default=0.02, help="malformed messages")
    p.add_argument("--extra-field-fraction", type=float, default=0.02,
                   help="valid events carrying a field the schema does not know (schema evolution)")
    p.add_argument("--far-late-fraction", type=float, default=0.0,
                   help="events back-dated beyond the job's allowed lateness")
    p.add_argument("--far-late-delay", type=float, default=330.0, help="how far back, seconds (plus up to 30)")
    p.add_argument("--bot-bursts-per-minute", type=float, default=0.0,
                   help="bursts from one user (anomaly alerts must fire for each), per minute on average")
    p.add_argument("--bot-burst-size", type=int, default=120, help="events in one burst (the job alerts above 100)")
    p.add_argument("--correction-fraction", type=float, default=0.0,
                   help="events followed by a correction (a new content, change_type correction)")
    p.add_argument("--invalidation-fraction", type=float, default=0.0,
                   help="events followed by an invalidation (change_type invalidation)")
    p.add_argument("--deletion-fraction", type=float, default=0.0,
                   help="events followed by a tombstone of their entity (change_type deletion)")
    p.add_argument("--time-scale", type=float, default=1.0, help="<1 speeds up order lifecycles")
    p.add_argument("--load-ledger-dataset", default=None, help="load the ledger into <dataset>.producer_ledger at the end")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.rate <= 0:
        print("error: --rate must be positive", file=sys.stderr)
        return 2
    faults = FaultConfig(late_fraction=args.late_fraction, late_min_s=args.late_min, late_max_s=args.late_max,
                         duplicate_fraction=args.duplicate_fraction, conflict_fraction=args.conflict_fraction,
                         malformed_fraction=args.malformed_fraction, extra_field_fraction=args.extra_field_fraction,
                         far_late_fraction=args.far_late_fraction, far_late_delay_s=args.far_late_delay,
                         bot_bursts_per_minute=args.bot_bursts_per_minute, bot_burst_size=args.bot_burst_size,
                         correction_fraction=args.correction_fraction, invalidation_fraction=args.invalidation_fraction,
                         deletion_fraction=args.deletion_fraction,
                         attributes=args.attributes)
    try:
        faults.validate()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_id = args.run_id or uuid.uuid4().hex[:12]
    ledger_path = args.ledger or Path(".local/ledger") / f"{run_id}.jsonl"
    duration = args.duration if args.duration is not None or args.count is not None else 60.0

    from simulator.runner import make_publisher

    problem = _check_setup(args)
    if problem:
        return fail(problem)
    publisher = make_publisher()
    topic_path = publisher.topic_path(args.project, args.topic)
    ledger = LedgerWriter(ledger_path)
    sim = Simulator(publisher, topic_path, ledger, run_id, rate=args.rate, mix=args.mix, faults=faults,
                    seed=args.seed, time_scale=args.time_scale, strict_brief=args.strict_brief)

    interrupted = []

    def on_signal(signum, frame):
        if interrupted:
            return
        interrupted.append(signum)
        print("\nstopping: publishing every held-back event now ...", file=sys.stderr)
        sim.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    progress = None if args.quiet else _progress_printer()
    print(f"run {run_id}: publishing to {topic_path}, ledger {ledger_path}", file=sys.stderr)
    stats = sim.run(duration_s=duration if args.count is None else None, count=args.count, progress=progress)
    ledger.close()
    print(f"done: {stats.line()}", file=sys.stderr)
    if args.load_ledger_dataset:
        rows = load_to_bigquery(ledger_path, args.project, args.load_ledger_dataset)
        print(f"loaded {rows} ledger rows into {args.load_ledger_dataset}.producer_ledger", file=sys.stderr)
    print(run_id)
    return 1 if stats.failed else 0


def _check_setup(args) -> str | None:
    """In seconds: the services answer and the topic exists (otherwise the
    publisher's own retries would take minutes to say so)."""
    from google.api_core import exceptions as gexc

    from common.clients import SetupError, check_services, publisher_client

    try:
        check_services(("pubsub", "bigquery") if args.load_ledger_dataset else ("pubsub",))
    except SetupError as err:
        return str(err)
    client = publisher_client()
    topic = client.topic_path(args.project, args.topic)
    try:
        client.get_topic(request={"topic": topic}, timeout=5, retry=None)
    except gexc.NotFound:
        return f"topic {topic} does not exist: python -m provision --project {args.project} (or check --topic)"
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is said the same way
        return f"cannot reach Pub/Sub to check {topic} ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def _progress_printer():
    """A live status line on a terminal; a line every 10 s otherwise (CI, logs)."""
    interactive = sys.stderr.isatty()
    last = [0.0]

    def show(stats):
        if interactive:
            print("\r" + stats.line() + " " * 4, end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            print(stats.line(), file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    sys.exit(main())
