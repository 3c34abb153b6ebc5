"""The backfill: historical JSON files (S3, Cloud Storage or a local folder)
through the job's own rules, in batch.

    files -> ReadHistory -> ParseEvents -> DeduplicateHistory -+-> event tables (staged, then merged)
             (file, line)      |                  |            +-> MinuteFiles -> the minute folders
                               v                  v
                          dead letters       conflicts

What is the stream's, unchanged: the parser (`ParseEvents`: the contract,
identity, event time, values fitted to their columns, the same dead-letter
reasons), the BigQuery row and the file line (`schemas.contract`), the
minute folders (`MinuteFiles`: layout, names, manifests, each folder read
back before anything is added). What differs, and why:

* **Input.** Newline-delimited JSON or a JSON array per file, gzip or plain
  (by its magic bytes, whatever the name), in the brief's format (the type
  inside the body). Each record carries its file and line (`source_file`,
  `source_line`, as message attributes): a bad record's dead letter says
  where it is, and copies of an event are ordered by it.
* **Dedup** is exact: every copy of an identity meets the others in one
  group (a GroupByKey, which a batch runner does cheaply), the first in file
  order is kept, a later copy with the same content is a duplicate and one
  with another content a conflict. The stream's memory of the last minutes
  has no meaning for history.
* **Idempotence.** Rows go to staging tables and are merged into the real
  ones by their key (`backfill/__main__.py`): an identity BigQuery already
  holds, from the stream or an earlier backfill, is not inserted again.
  Files are created once under names nobody else takes, and a folder read
  back drops what it holds (a different content under a held identity is a
  conflict, stage `files`). A second run therefore adds nothing.
* No streaming analytics: metrics per minute, sessions and alerts are about
  the live stream (history has daily aggregates, `python -m warehouse`).
"""

from __future__ import annotations

import gzip
import io
import logging
import threading
import typing
import zlib

import apache_beam as beam
import orjson
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from pipeline.graph import file_row
from pipeline.minute_files import MinuteFiles
from pipeline.transforms import (CONFLICTS, DEAD_LETTER, Accepted, ParseEvents, accepted_conflict_row,
                                 table_row_maker, to_conflict_rows, to_dead_letter_rows)
from pipeline.validation import Rejected, dead_letter_row
from schemas import staging_table
from schemas.contract import ATTR_SOURCE_FILE, ATTR_SOURCE_LINE, identity_digest

_log = logging.getLogger(__name__)
SOURCE = "backfill"  # the `source` column of what the backfill writes
GZIP_MAGIC = b"\x1f\x8b"


class _Progress:
    """Records and bytes read so far in this process, for the command's
    progress bar (the FnApiRunner runs the steps in the command's process;
    on Dataflow nobody reads it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def add(self, records: int = 0, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.records += records
            self.bytes += nbytes
            self.files += files

    def wrote(self, record) -> None:
        """A FileRecord written: the writing phase's progress."""
        with self._lock:
            self.files_written += 1
            self.lines_written += record.lines

    def snapshot(self) -> tuple[int, int, int]:
        with self._lock:
            return self.records, self.bytes, self.files

    def written(self) -> tuple[int, int]:
        with self._lock:
            return self.files_written, self.lines_written

    def reset(self) -> None:
        with self._lock:
            self.records = self.bytes = self.files = self.files_written = self.lines_written = 0


PROGRESS = _Progress()


def _show_written(record) -> None:
    """(module-level: pickled by reference, the same PROGRESS in this process)"""
    PROGRESS.wrote(record)


# -- reading ------------------------------------------------------------------------------------
def _opened(path: str):
    """A binary stream of the file's content, gunzipped when it starts with
    gzip's magic bytes (history is named anyhow)."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    buffered = io.BufferedReader(raw, buffer_size=1 << 20)
    return gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == GZIP_MAGIC else buffered


def _first_byte(stream) -> bytes:
    """The first byte that is not white space (the stream is not consumed)."""
    head = stream.peek(4096)
    stripped = head.lstrip()
    return stripped[:1]


LINE_SUFFIXES = (".jsonl", ".ndjson")  # always newline-delimited, whatever the first line holds


def records_of(path: str):
    """(record number, bytes) of one history file: its non-blank lines
    (numbered as lines) for .jsonl/.ndjson (gzipped or not); for any other
    name, the elements of a JSON array (numbered from 1) when the whole file
    is one, else its lines. Raises OSError / zlib.error / EOFError when the
    file cannot be read to its end (what was read is yielded first)."""
    lines_only = path.lower().removesuffix(".gz").endswith(LINE_SUFFIXES)
    with _opened(path) as stream:
        if isinstance(stream, gzip.GzipFile):
            # small reads: a file damaged midway still gives what precedes the damage
            stream = io.BufferedReader(stream, buffer_size=1 << 16)
        if not lines_only and _first_byte(stream) == b"[":
            data = stream.read()
            try:
                elements = orjson.loads(data)
            except orjson.JSONDecodeError:
                elements = None  # not one array: lines, the first of which starts with "["
            if isinstance(elements, list):
                for number, element in enumerate(elements, 1):
                    yield number, orjson.dumps(element)
                return
            for number, line in enumerate(data.split(b"\n"), 1):
                if line.strip():
                    yield number, line.rstrip(b"\r")
            return
        for number, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


class _ReadRecordsFn(beam.DoFn):
    """FileMetadata -> messages (data, {source_file, source_line}, None), the
    shape ParseEvents reads; a file that cannot be read to its end gives a
    dead letter (stage `read`) after the records read before the damage."""

    def __init__(self):
        self.files = Metrics.counter("backfill", "files_read")
        self.records = Metrics.counter("backfill", "records_read")
        self.unreadable = Metrics.counter("backfill", "files_unreadable")

    def process(self, metadata):
        path = metadata.path
        count = 0
        try:
            for number, data in records_of(path):
                count += 1
                if count % 1000 == 0:
                    PROGRESS.add(records=1000)
                yield data, {ATTR_SOURCE_FILE: path, ATTR_SOURCE_LINE: str(number)}, None
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            self.unreadable.inc()
            from datetime import datetime, timezone

            rejection = Rejected("read", "unreadable_file",
                                 f"{path} could not be read past record {count}: {type(exc).__name__}: {exc}"[:2000])
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_row(
                rejection, path.encode(), {ATTR_SOURCE_FILE: path, ATTR_SOURCE_LINE: str(count + 1)}, None,
                datetime.now(timezone.utc)))
        self.files.inc()
        self.records.inc(count)
        PROGRESS.add(records=count % 1000, nbytes=metadata.size_in_bytes, files=1)


class ReadHistory(beam.PTransform):
    """File patterns (s3://, gs://, local; `**` for every folder below) ->
    {'messages': (data, attributes, None), 'dead_letter': rows of files that
    could not be read}. A pattern that matches nothing stops the run (a typo
    must not look like an empty history)."""

    def __init__(self, patterns: list[str]):
        super().__init__()
        self.patterns = list(patterns)

    def expand(self, pbegin):
        return (pbegin
                | "Patterns" >> beam.Create(self.patterns)
                | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadRecords" >> beam.ParDo(_ReadRecordsFn()).with_outputs(DEAD_LETTER, main="messages"))


# -- exact dedup ----------------------------------------------------------------------------------
class _FirstCopyFn(beam.DoFn):
    """(digest, copies) -> the first copy in file order; a later copy with the
    same content is counted as a duplicate, one with another content is a
    conflict (stage `backfill`)."""

    def __init__(self):
        self.duplicates = Metrics.counter("backfill", "duplicates")
        self.conflicts = Metrics.counter("backfill", "conflicts")

    def process(self, element):
        from datetime import datetime, timezone

        _, copies = element
        ordered = sorted(copies, key=lambda a: (a.origin is None, a.origin or "", a.event.content_hash))
        first = ordered[0]
        yield TimestampedValue(first, first.event.event_time.timestamp())
        reported = {first.event.content_hash}
        for other in ordered[1:]:
            if other.event.content_hash == first.event.content_hash:
                self.duplicates.inc()
            elif other.event.content_hash not in reported:  # each other content once
                reported.add(other.event.content_hash)
                self.conflicts.inc()
                yield beam.pvalue.TaggedOutput(CONFLICTS, accepted_conflict_row(
                    other, first.event.content_hash, "backfill", datetime.now(timezone.utc)))


class DeduplicateHistory(beam.PTransform):
    """Accepted -> {'events': one per identity, 'conflicts': rows}."""

    def expand(self, accepted):
        def by_identity(acc: Accepted):
            return identity_digest(acc.event.event_type, acc.event.version_id), acc

        return (accepted
                | "KeyByIdentity" >> beam.Map(by_identity).with_output_types(typing.Tuple[bytes, Accepted])
                | "GroupCopies" >> beam.GroupByKey()
                | "KeepFirstCopy" >> beam.ParDo(_FirstCopyFn()).with_outputs(CONFLICTS, main="events"))


# -- the graph --------------------------------------------------------------------------------------
class StagedTables:
    """The backfill's table sink: the job's own (`write(label, rows,
    dead_letter_table)` of pipeline.graph.Sinks), each (table, row, insertId)
    sent to the run's staging table `<table>__backfill_<run>` instead;
    backfill/staging.py merges them into the tables once the graph is done."""

    def __init__(self, tables, run_id: str):
        self.tables, self.run_id = tables, run_id

    def write(self, label: str, rows, dead_letter_table: bool = False):
        run_id = self.run_id

        def to_staging(item):
            table, row, insert_id = item
            return staging_table(table, run_id), row, insert_id

        staged = rows | f"{label}ToStaging" >> beam.Map(to_staging)
        return self.tables.write(label, staged, dead_letter_table=dead_letter_table)


class BackfillOutputs(typing.NamedTuple):
    events: beam.PCollection
    dead_letters: beam.PCollection
    conflicts: beam.PCollection
    files: beam.PCollection


def build_backfill(pipeline: beam.Pipeline, opts, sinks, patterns: list[str], erased=None) -> BackfillOutputs:
    """Add the backfill's steps to `pipeline`. `opts`: EcommerceOptions (the
    dataset, output prefix, shards and limits the stream uses, without the
    event-age limit); `sinks`: a pipeline.graph.Sinks whose tables write to
    the staging tables (see backfill/__main__.py); `erased`: the erased data
    subjects (pipeline.erasure), whom a reload of history must not bring back."""
    from dataclasses import replace

    from pipeline.erasure import RedactErased, SuppressErased

    read = pipeline | "ReadHistory" >> ReadHistory(patterns)
    parsed = read.messages | "ParseEvents" >> ParseEvents(replace(opts.limits(), max_event_age=None))
    accepted, parse_dead_letters = parsed.events, parsed.dead_letter
    if erased is not None:
        accepted = accepted | "SuppressErased" >> SuppressErased(erased)
        parse_dead_letters = parse_dead_letters | "RedactErased" >> RedactErased(erased)
    deduped = accepted | "DeduplicateHistory" >> DeduplicateHistory()
    events = deduped.events
    written = events | "MinuteFiles" >> MinuteFiles(opts.output_prefix.rstrip("/"), opts.lateness(),
                                                    opts.num_file_shards, sinks.files, batch=True)
    _ = written.files | "ShowProgress" >> beam.Map(_show_written)
    conflicts = (deduped.conflicts, written.conflicts) | "AllConflicts" >> beam.Flatten()
    refused = [
        sinks.tables.write("WriteEventTables", events | "ToTableRows" >> beam.Map(table_row_maker(SOURCE))),
        sinks.tables.write("WriteConflicts", conflicts | "ToConflictRows" >> beam.Map(to_conflict_rows)),
        sinks.tables.write("WriteFilesWritten", written.files | "ToFileRows" >> beam.Map(file_row)),
    ]
    dead_letters = (read.dead_letter, parse_dead_letters, *refused) | "AllDeadLetters" >> beam.Flatten()
    sinks.tables.write("WriteDeadLetterTable", dead_letters | "ToDeadLetterRows" >> beam.Map(to_dead_letter_rows),
                       dead_letter_table=True)
    return BackfillOutputs(events, dead_letters, conflicts, written.files)
