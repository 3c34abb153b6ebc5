"""`python -m backfill`: load historical JSON (S3, Cloud Storage or a local
folder) through the job's own rules, into the same tables and minute folders.

    source .local/stack/env.sh      # the local stack, S3 emulator included
    python -m backfill --project=local-project --dataset=ecommerce \\
        --output_prefix=gs://local-bucket/output --input='s3://local-history/events/**'

    # On Dataflow (batch): ./run_dataflow.sh backfill 's3://bucket/prefix/**'

Steps: every option checked, the input matched and the tables and bucket
checked, within seconds; the graph (`pipeline/backfill.py`) runs on the
FnApiRunner here (Dataflow with --runner=DataflowRunner), writing rows to
staging tables of this run and files straight into their minute folders;
then one MERGE per table adds what BigQuery does not hold yet
(`backfill/staging.py`), and a summary is printed. Running it again adds
nothing; events the stream already delivered are not added twice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from backfill.options import BackfillOptions
from backfill.staging import create_staging, drop_staging, merge_staged, staged_tables
from schemas import ERASED_SUBJECTS_TABLE
from common import clients
from pipeline.launch import check_credentials, configure_logging
from pipeline.options import EcommerceOptions, OptionsError, parse_options

_log = logging.getLogger("backfill")
PROG = "python -m backfill"
STREAM_ONLY = "an option of the streaming job (python -m pipeline / python -m localrun), not of the backfill"
HINTS = {f"--{name}": STREAM_ONLY for name in ("subscription", "checkpoint_file", "replay_from")}


def _local_defaults(options: PipelineOptions) -> None:
    """The FnApiRunner in this process, with the state cache off as on
    Dataflow (with it on, every state write walks the cache with objsize:
    docs/performance.md, section 1)."""
    std = options.view_as(StandardOptions)
    if not std.runner:
        std.runner = "FnApiRunner"
    if std.runner == "FnApiRunner":
        from apache_beam.runners.portability.fn_api_runner import worker_handlers

        worker_handlers.STATE_CACHE_SIZE_MB = 0


def _match(patterns: list[str], options: PipelineOptions) -> tuple[int, int]:
    """(files, bytes) the patterns match; OptionsError for one that matches
    nothing (a typo must not load an empty history) or cannot be read."""
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(options)
    files = size = 0
    empty = []
    for pattern in patterns:
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # noqa: BLE001 - the store's own error, said in one line
            raise OptionsError(f"cannot list --input {pattern}: {type(exc).__name__}: {str(exc)[:300]}") from None
        if not found:
            empty.append(pattern)
        files += len(found)
        size += sum(m.size_in_bytes for m in found)
    if empty:
        raise OptionsError(f"--input matches no file: {', '.join(empty)}")
    return files, size


def _preflight(opts: EcommerceOptions) -> None:
    """The tables the backfill writes and the bucket exist."""
    from google.api_core import exceptions as gexc

    project = opts.table_project()
    bq = clients.bigquery_client(project)
    missing = []
    for table in staged_tables() + [ERASED_SUBJECTS_TABLE]:
        try:
            bq.get_table(f"{project}.{opts.dataset}.{table}", timeout=5, retry=None)
        except gexc.NotFound:
            missing.append(f"BigQuery table {project}.{opts.dataset}.{table} does not exist (run provisioning)")
    if opts.output_prefix.startswith("gs://"):
        name = opts.output_prefix[5:].split("/", 1)[0]
        try:
            clients.storage_client(project).get_bucket(name, timeout=5, retry=None)
        except gexc.NotFound:
            missing.append(f"bucket gs://{name} does not exist (run provisioning)")
    if missing:
        raise OptionsError("missing resources:\n  - " + "\n  - ".join(missing))


class _Progress:
    """On a terminal, two rich progress lines: reading (bytes of input,
    records, records/s, the time left) and writing (minute files and their
    lines; the merge follows); a line every 10 s otherwise. Reads
    pipeline.backfill.PROGRESS, which the steps update in this process (the
    FnApiRunner). The writing phase follows the reading one: every copy of an
    event must have been read before the first is chosen."""

    def __init__(self, total_bytes: int, files: int):
        self.total_bytes, self.files = total_bytes, files
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backfill-progress", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        from pipeline.backfill import PROGRESS

        started = time.monotonic()
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[what]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
                read = bar.add_task("read ", total=self.total_bytes or None, what="")
                write = bar.add_task("write", total=None, what="waits for the reading")
                read_done = None
                while True:
                    stopping = self._stop.wait(0.5)
                    records, nbytes, files = PROGRESS.snapshot()
                    now = time.monotonic()
                    if read_done is None and files >= self.files:
                        read_done = now
                    rate = records / max(1e-6, (read_done or now) - started)
                    bar.update(read, completed=nbytes, what=f"{nbytes:,}/{self.total_bytes:,} bytes, {files}/"
                                                            f"{self.files} files, {records:,} records ({rate:,.0f}/s)")
                    files_written, lines = PROGRESS.written()
                    if files_written:
                        lines_rate = lines / max(1e-6, now - (read_done or started))
                        bar.update(write, what=f"{files_written:,} minute files, {lines:,} events ({lines_rate:,.0f}/s)")
                    if stopping:
                        break
        else:
            while not self._stop.wait(10):
                records, nbytes, files = PROGRESS.snapshot()
                files_written, lines = PROGRESS.written()
                elapsed = time.monotonic() - started
                print(f"backfill: read {files}/{self.files} files, {nbytes:,}/{self.total_bytes:,} bytes, "
                      f"{records:,} records; wrote {files_written:,} minute files, {lines:,} events "
                      f"({elapsed:.0f}s)", file=sys.stderr, flush=True)


def _counters(result) -> dict:
    out = {}
    try:
        query = result.metrics().query()
    except Exception:  # noqa: BLE001 - counters are a report, not a result
        return out
    for counter in query.get("counters", []):
        key = f"{counter.key.metric.namespace}.{counter.key.metric.name}"
        out[key] = out.get(key, 0) + (counter.committed or counter.attempted or 0)
    return out


def summary_lines(counters: dict, merged: dict, elapsed_s: float) -> list[str]:
    records = counters.get("backfill.records_read", 0)
    valid = sum(v for k, v in counters.items() if k.startswith("events.valid_"))
    inserted = {t: m["inserted"] for t, m in merged.items()}
    events_inserted = sum(n for t, n in inserted.items() if t.endswith("_events"))
    return [
        f"read {counters.get('backfill.files_read', 0)} files, {records:,} records; {elapsed_s:.1f}s end to end "
        f"({records / max(elapsed_s, 1e-6):,.0f} records/s with every write)"
        + (f"; {counters['backfill.files_unreadable']} file(s) could not be read to the end (dead letters)"
           if counters.get("backfill.files_unreadable") else ""),
        f"valid {valid:,}, invalid {counters.get('events.invalid', 0):,} (dead letters), duplicates "
        f"{counters.get('backfill.duplicates', 0):,}, conflicts {counters.get('backfill.conflicts', 0):,}",
        f"BigQuery: {events_inserted:,} new event rows ("
        + ", ".join(f"{t} {n:,}" for t, n in inserted.items() if t.endswith("_events"))
        + f"), {inserted.get('dead_letter', 0):,} dead letters, {inserted.get('conflicts', 0):,} conflicts; "
        f"what BigQuery already held was not added again",
        f"files: {counters.get('files.written', 0):,} written, {counters.get('files.lines_backfill', 0):,} lines; "
        f"{counters.get('files.duplicates_dropped', 0):,} events their folders already held",
    ]


def _dry_run(options, opts, backfill, run_id: str) -> int:
    """The Dataflow batch graph built offline: nothing read, submitted or merged."""
    from pipeline.backfill import StagedTables, build_backfill
    from pipeline.bigquery_sink import BigQueryTables
    from pipeline.files import FileWriter
    from pipeline.graph import Sinks

    project = opts.table_project()
    tables = StagedTables(BigQueryTables(project, opts.dataset, opts.bq_batch_size), run_id)
    pipeline = beam.Pipeline(options=options)
    from pipeline.erasure import ErasedSubjects

    build_backfill(pipeline, opts, Sinks(tables=tables, files=FileWriter(project)), backfill.input,
                   erased=ErasedSubjects(project, opts.dataset, opts.erasure_refresh_s))
    pipeline.run()
    _log.info("dry run: the backfill's Dataflow graph was built; nothing was read, submitted or merged")
    return 0


def run(argv=None) -> int:
    configure_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("NO_GCE_CHECK", "True")
    try:
        options = parse_options(argv, PROG, __doc__, hint=HINTS)
        _local_defaults(options)
        opts, backfill = options.view_as(EcommerceOptions), options.view_as(BackfillOptions)
        opts.validate_all(require_source=False, streaming=False)
        backfill.validate_backfill()
        run_id = backfill.run_id or f"backfill-{uuid.uuid4().hex[:10]}"
        dry_run = str(options.view_as(TestOptions).dry_run).lower() in ("true", "1", "yes")
        if dry_run and not opts.is_dataflow():
            raise OptionsError("--dry_run=True builds a Dataflow job's graph: give --runner=DataflowRunner too")
        if opts.is_dataflow():
            options.view_as(StandardOptions).streaming = False
            if not dry_run:
                check_credentials()
        else:
            clients.check_services(("bigquery", "storage"))
            clients.use_anonymous_beam_credentials()
        if not dry_run:
            if any(p.startswith("s3://") for p in backfill.input):
                clients.check_s3()
            files, total_bytes = _match(backfill.input, options)
            _preflight(opts)
    except (OptionsError, clients.SetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if dry_run:
        return _dry_run(options, opts, backfill, run_id)

    from pipeline.backfill import PROGRESS, StagedTables, build_backfill
    from pipeline.bigquery_sink import BigQueryTables
    from pipeline.clients import bigquery_client as worker_bigquery_client
    from pipeline.clients import storage_client as worker_storage_client
    from pipeline.files import FileWriter
    from pipeline.graph import Sinks

    local = not opts.is_dataflow()
    bq_factory = clients.bigquery_client if local else worker_bigquery_client
    storage_factory = clients.storage_client if local else worker_storage_client
    project = opts.table_project()
    client = clients.bigquery_client(project)
    create_staging(client, project, opts.dataset, run_id)
    print(f"backfill {run_id}: {files} files ({total_bytes:,} bytes) from {', '.join(backfill.input)} -> "
          f"{project}.{opts.dataset} and {opts.output_prefix}", file=sys.stderr)
    tables = StagedTables(BigQueryTables(project, opts.dataset, opts.bq_batch_size, bq_factory, opts.outage_wait_s()),
                          run_id)
    sinks = Sinks(tables=tables, files=FileWriter(project, storage_factory, opts.outage_wait_s()))
    from pipeline.erasure import ErasedSubjects

    pipeline = beam.Pipeline(options=options)
    build_backfill(pipeline, opts, sinks, backfill.input,
                   erased=ErasedSubjects(project, opts.dataset, opts.erasure_refresh_s, bq_factory))
    PROGRESS.reset()
    started = time.monotonic()
    try:
        with _Progress(total_bytes, files):
            result = pipeline.run()
            state = result.wait_until_finish()
    except Exception as exc:  # noqa: BLE001 - said in one line, staging kept for a re-run
        _log.error("the backfill failed: %s", exc, exc_info=True)
        print(f"error: the backfill failed ({type(exc).__name__}: {str(exc)[:300]}); nothing was merged into the "
              f"tables; re-run with --run_id={run_id} (the files written so far are kept and read back)",
              file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if str(state).upper().endswith("FAILED"):
        print(f"error: the backfill's job ended {state}; nothing was merged; re-run with --run_id={run_id}",
              file=sys.stderr)
        return 1
    merged = merge_staged(client, project, opts.dataset, run_id)
    if not backfill.keep_staging:
        drop_staging(client, project, opts.dataset, run_id)
    for line in summary_lines(_counters(result), merged, elapsed):
        print(line)
    print(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(run())
