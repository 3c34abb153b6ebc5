"""The streaming job: options -> preflight -> graph -> run.

    python -m pipeline --runner=BundleBasedDirectRunner --streaming \\
        --project=local-project --subscription=projects/local-project/subscriptions/backend-events-topic-sub \\
        --dataset=ecommerce --output_prefix=gs://local-bucket/output

`build_pipeline` is separate from `run` so tests can hand it a TestStream (or
any PCollection of messages) instead of Pub/Sub, and later features
(per-minute metrics, sessions, backfill) can hang off the same event trunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.bigquery_sink import WriteToBigQueryTables
from pipeline.options import EcommerceOptions, OptionsError
from pipeline.minute_files import FileRecord, MinuteFiles
from pipeline.transforms import (DeduplicateEvents, ParseEvents, SkipStoredEvents, table_row_maker,
                                 to_conflict_rows, to_dead_letter_rows)
from schemas import CONFLICTS_TABLE, DEAD_LETTER_TABLE, FILES_WRITTEN_TABLE, event_specs
from schemas.contract import ATTR_EVENT_ID, ATTR_EVENT_TIME

_log = logging.getLogger(__name__)


@dataclass
class JobOutputs:
    """What build_pipeline returns, for tests and for later features."""

    events: beam.PCollection        # Accepted, deduplicated, event-time stamped
    dead_letters: beam.PCollection  # dead-letter rows (parse/validate + refused inserts)
    conflicts: beam.PCollection     # conflicts-table rows (dedup memory and minute folders)
    files: beam.PCollection         # FileRecord per file written


def read_messages(pipeline: beam.Pipeline, opts: EcommerceOptions) -> beam.PCollection:
    """The Pub/Sub edge. By default nothing is asked of the producer's
    attributes (the brief's producer sets none): the watermark follows publish
    time and the job stamps each event with the event time of its body. Only
    for producers that guarantee them: --pubsub_timestamp_attribute=on makes
    Dataflow's watermark follow the event_time attribute, --pubsub_id_label=on
    makes Dataflow dedup by the event_id attribute (see README)."""
    return pipeline | "ReadPubSub" >> beam.io.ReadFromPubSub(
        subscription=opts.subscription,
        with_attributes=True,
        id_label=ATTR_EVENT_ID if opts.pubsub_id_label == "on" else None,
        timestamp_attribute=ATTR_EVENT_TIME if opts.pubsub_timestamp_attribute == "on" else None,
    )


def _file_row(record: FileRecord):
    row = record._asdict()
    row["file_id"] = hashlib.sha256(f"{record.path}\x00{record.sha256}".encode()).hexdigest()[:40]
    return FILES_WRITTEN_TABLE, row, row["file_id"]


def build_pipeline(pipeline: beam.Pipeline, opts: EcommerceOptions, messages: beam.PCollection | None = None,
                   clock=time.time, write_bigquery: bool = True, seen: dict | None = None) -> JobOutputs:
    """Add the job's steps to `pipeline`. Exposed for testing: pass `messages`
    to replace the Pub/Sub read, `clock` for processing time (dedup memory,
    late-file batching). `seen` (digest -> content hash): events BigQuery
    already holds, not inserted again, when a local run replays."""
    if messages is None:
        messages = read_messages(pipeline, opts)
    project = opts.table_project()

    parsed = messages | "ParseEvents" >> ParseEvents(opts.limits())
    fresh = parsed.events | "SkipStoredEvents" >> SkipStoredEvents(seen)
    deduped = fresh.events | "DeduplicateEvents" >> DeduplicateEvents(
        opts.dedup_memory_s, opts.dedup_buckets, clock=clock)
    events = deduped.events
    # Replayed events BigQuery already holds still go to their folders, which
    # keep each event once by themselves.
    for_files = (events, fresh.stored) | "EventsForFiles" >> beam.Flatten()
    written = for_files | "MinuteFiles" >> MinuteFiles(
        opts.output_prefix.rstrip("/"), opts.allowed_lateness_s, opts.late_firing_delay_s, opts.num_file_shards,
        project, clock=clock)
    conflicts = (fresh.conflicts, deduped.conflicts, written.conflicts) | "AllConflicts" >> beam.Flatten()

    refused = []
    if write_bigquery:
        refused.append(events
                       | "ToTableRows" >> beam.Map(table_row_maker("stream"))
                       | "WriteEventTables" >> WriteToBigQueryTables(project, opts.dataset, opts.bq_batch_size))
        refused.append(conflicts
                       | "ToConflictRows" >> beam.Map(to_conflict_rows)
                       | "WriteConflicts" >> WriteToBigQueryTables(project, opts.dataset, opts.bq_batch_size))
        refused.append(written.files
                       | "ToFileRows" >> beam.Map(_file_row)
                       | "WriteFilesWritten" >> WriteToBigQueryTables(project, opts.dataset, opts.bq_batch_size))

    dead_letters = (parsed.dead_letter, *refused) | "AllDeadLetters" >> beam.Flatten()
    if write_bigquery:
        _ = (dead_letters
             | "ToDeadLetterRows" >> beam.Map(to_dead_letter_rows)
             | "WriteDeadLetterTable" >> WriteToBigQueryTables(project, opts.dataset, opts.bq_batch_size,
                                                                is_dead_letter_table=True))
    return JobOutputs(events=events, dead_letters=dead_letters, conflicts=conflicts, files=written.files)


# -- preflight: resources exist before the job starts ---------------------------------------
def preflight(opts: EcommerceOptions) -> None:
    """Raise OptionsError naming any resource that is missing. Runs in
    seconds against the emulators or the real services, never hangs."""
    from google.api_core import exceptions as gexc

    from pipeline.clients import bigquery_client, storage_client, subscriber_client

    project = opts.table_project()
    missing = []
    try:
        sub = subscriber_client()
        try:
            sub.get_subscription(request={"subscription": opts.subscription}, timeout=10)
        finally:
            sub.close()
    except gexc.NotFound:
        missing.append(f"Pub/Sub subscription {opts.subscription} does not exist (run provisioning)")
    except Exception as exc:  # noqa: BLE001
        missing.append(f"cannot reach Pub/Sub to check {opts.subscription}: {type(exc).__name__}: {exc}"[:300])
    bq = bigquery_client(project)
    for table in [spec.name for spec in event_specs().values()] + [DEAD_LETTER_TABLE, CONFLICTS_TABLE,
                                                                      FILES_WRITTEN_TABLE]:
        try:
            bq.get_table(f"{project}.{opts.dataset}.{table}", timeout=10, retry=None)
        except gexc.NotFound:
            missing.append(f"BigQuery table {project}.{opts.dataset}.{table} does not exist (run provisioning)")
        except Exception as exc:  # noqa: BLE001
            missing.append(f"cannot reach BigQuery to check {table}: {type(exc).__name__}: {exc}"[:300])
            break
    if opts.output_prefix.startswith("gs://"):
        bucket = opts.output_prefix[5:].split("/", 1)[0]
        try:
            storage_client(project).get_bucket(bucket, timeout=10, retry=None)
        except gexc.NotFound:
            missing.append(f"bucket gs://{bucket} does not exist (run provisioning)")
        except Exception as exc:  # noqa: BLE001
            missing.append(f"cannot reach Cloud Storage to check gs://{bucket}: {type(exc).__name__}: {exc}"[:300])
    if missing:
        raise OptionsError("missing resources:\n  - " + "\n  - ".join(missing))


def run(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam.runners", "apache_beam.io.gcp", "google", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = PipelineOptions(argv)
    opts = options.view_as(EcommerceOptions)
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        os.environ.setdefault("NO_GCE_CHECK", "True")
    try:
        opts.validate_all()
        if not opts.skip_preflight:
            preflight(opts)
    except OptionsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options.view_as(StandardOptions).streaming = True
    if not opts.is_dataflow():
        from pipeline.local_read import enlarge_pulls

        enlarge_pulls(opts.local_pull_max_messages or 10)
    checkpointer = None
    seen = None
    if not opts.is_dataflow():
        from pipeline.recovery import Checkpointer, resolve_replay_from, seek_subscription, stored_since

        try:
            replay_from = resolve_replay_from(opts.replay_from, opts.checkpoint_file)
        except ValueError as err:
            print(f"error: --replay_from: {err}", file=sys.stderr)
            return 2
        if replay_from:
            # What the replay brings again and BigQuery already holds is dropped as
            # a duplicate (files: each minute folder is read back).
            seen = stored_since(opts.table_project(), opts.dataset, replay_from)
            seek_subscription(opts.subscription, replay_from)
        if opts.checkpoint_file:
            checkpointer = Checkpointer(opts.checkpoint_file, opts.replay_margin_s, initial=replay_from).start()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, opts, seen=seen)
    result = pipeline.run()
    if opts.is_dataflow():
        from apache_beam.options.pipeline_options import TestOptions

        if options.view_as(TestOptions).dry_run:
            _log.info("dry run: the Dataflow job graph was built; nothing was submitted")
        else:
            _log.info("submitted to Dataflow; follow it in the console or with gcloud dataflow jobs list")
        return 0
    _log.info("job running (pid %d); stop it with Ctrl-C or SIGTERM", os.getpid())  # drills wait for this line
    state = wait_local(result, opts.run_duration_s)
    if checkpointer:
        checkpointer.stop()
    counters = metrics_summary(result)
    _log.info("job %s; counters: %s", state, json.dumps(counters, sort_keys=True))
    if opts.metrics_out:
        Path(opts.metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.metrics_out).write_text(json.dumps({"state": state, "counters": counters}, indent=2, sort_keys=True))
    return 0 if state != "FAILED" else 1


def wait_local(result, duration_s: int) -> str:
    """Run a local (DirectRunner) job until it fails, `duration_s` passes, or
    SIGINT/SIGTERM arrives; then cancel it. The DirectRunner supports neither
    a duration nor a clean drain, so this is the local stop procedure: events
    still held for a minute folder's next file are not written (BigQuery has
    them), and the subscription (which retains acked messages) lets a restart
    with --replay_from replay them into their folders."""
    finished = threading.Event()
    failure: list[BaseException] = []
    stop = threading.Event()

    def waiter():
        try:
            result.wait_until_finish()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)
        finally:
            finished.set()

    def on_signal(signum, frame):
        _log.info("signal %s: stopping the job", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    threading.Thread(target=waiter, name="beam-wait", daemon=True).start()
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while not finished.is_set() and not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                _log.info("run duration of %ss reached", duration_s)
                break
            finished.wait(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        _log.error("job failed: %s", failure[0], exc_info=failure[0])
        return "FAILED"
    if not finished.is_set():
        result.cancel()
        return "CANCELLED"
    return "DONE"


def metrics_summary(result) -> dict:
    """Committed counter values and distributions, by name."""
    out = {}
    try:
        query = result.metrics().query()
    except Exception:  # noqa: BLE001 - metrics are best effort on a cancelled job
        return out
    for counter in query.get("counters", []):
        key = f"{counter.key.metric.namespace}.{counter.key.metric.name}"
        out[key] = out.get(key, 0) + (counter.committed or 0)
    for dist in query.get("distributions", []):
        value = dist.committed
        if value and value.count:
            key = f"{dist.key.metric.namespace}.{dist.key.metric.name}"
            out[key] = {"count": value.count, "min": value.min, "max": value.max, "mean": round(value.mean, 1)}
    return out
