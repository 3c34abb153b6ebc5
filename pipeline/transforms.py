"""Composite transforms of the job, each with its own parameters and metrics.

    messages -> ParseEvents -> DeduplicateEvents -+-> event tables (BigQuery)
                     |              |              +-> SplitByLateness -> WindowedFiles (GCS)
                     v              v                                  \\-> TooLateFiles (GCS)
            dead letters    conflicts (BigQuery)

Sources and sinks stay at the edges (`pipeline.job`); everything here is
testable with TestStream and plain in-memory elements.
"""

from __future__ import annotations

import hashlib
import logging
import time
import typing
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import userstate
from apache_beam.transforms.window import FixedWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration

from pipeline import files
from pipeline.validation import Limits, Rejected, dead_letter_row, parse_message
from schemas import CONFLICTS_TABLE, DEAD_LETTER_TABLE, event_specs
from schemas.contract import (Canonical, bigquery_row, file_line, format_timestamp, identity_digest, insert_id,
                              parse_timestamp)

_log = logging.getLogger(__name__)
DEAD_LETTER = "dead_letter"
CONFLICTS = "conflicts"
TOO_LATE = "too_late"
_MAX_FIELD_COUNTERS = 50  # distinct unknown-field counters per worker: names come from producers


def _counter(name: str, event_type: str | None = None):
    return Metrics.counter("events", f"{name}_{event_type}" if event_type else name)


class Accepted(typing.NamedTuple):
    """A valid event on its way through the job."""

    event: Canonical
    publish_time: datetime | None
    ingest_time: datetime


# -- 1. parse and validate --------------------------------------------------------------
def _unpack(message):
    """(data, attributes, publish_time) from a PubsubMessage or a plain tuple."""
    if isinstance(message, tuple):
        data, attributes, publish_time = (list(message) + [None, None])[:3]
    else:
        data = message.data
        attributes = message.attributes
        publish_time = getattr(message, "publish_time", None)
    if publish_time is not None and not isinstance(publish_time, datetime):
        publish_time = None
    if publish_time is not None and publish_time.tzinfo is None:
        publish_time = publish_time.replace(tzinfo=timezone.utc)
    return data, attributes, publish_time


class _ParseFn(beam.DoFn):
    def __init__(self, limits: Limits):
        self.limits = limits
        self.read = _counter("read")
        self.invalid = _counter("invalid")
        self.lag = Metrics.distribution("events", "lag_ms")
        self._per_type = {t: (_counter("valid", t), Metrics.distribution("events", f"lag_ms_{t}"),
                              _counter("with_unknown_fields", t)) for t in event_specs()}
        self._field_counters: dict = {}

    def process(self, message):
        self.read.inc()
        data, attributes, publish_time = _unpack(message)
        now = datetime.now(timezone.utc)
        try:
            event = parse_message(data, attributes, publish_time, now=now, limits=self.limits)
        except Rejected as rejection:
            self.invalid.inc()
            _counter("invalid", rejection.error_type).inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_row(rejection, data, attributes, publish_time, now))
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the message either
            self.invalid.inc()
            rejection = Rejected("parse", "internal_error", f"{type(exc).__name__}: {exc}"[:2000])
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_row(rejection, data, attributes, publish_time, now))
            return
        valid, lag, with_unknown = self._per_type[event.event_type]
        valid.inc()
        lag_ms = int((now - event.event_time).total_seconds() * 1000)
        self.lag.update(lag_ms)
        lag.update(lag_ms)
        if event.unknown_fields:
            with_unknown.inc()
            self._count_unknown(event)
        # Event time comes from the payload, never from arrival.
        yield TimestampedValue(Accepted(event, publish_time, now), event.event_time.timestamp())

    def _count_unknown(self, event: Canonical) -> None:
        """One counter per (type, unknown field path): what producers send
        that the schema does not know yet. Capped, since producers name them."""
        for path in event.unknown_fields:
            key = (event.event_type, path)
            counter = self._field_counters.get(key)
            if counter is None:
                name = path if len(self._field_counters) < _MAX_FIELD_COUNTERS else "other"
                counter = self._field_counters[key] = Metrics.counter(
                    "schema", f"unknown_field_{event.event_type}_{name}"[:200])
            counter.inc()


class ParseEvents(beam.PTransform):
    """Messages -> {'events': Accepted stamped with event time,
    'dead_letter': dead-letter rows}."""

    def __init__(self, limits: Limits = Limits()):
        super().__init__()
        self.limits = limits

    def expand(self, messages):
        return messages | "ParseAndValidate" >> beam.ParDo(_ParseFn(self.limits)).with_outputs(
            DEAD_LETTER, main="events")


# -- 2. dedup and conflicts by identity -------------------------------------------------------
def conflict_row(accepted: Accepted, accepted_hash: str, stage: str, detected_at: datetime) -> dict:
    """The conflicts table row for a copy whose identity was accepted with
    another content (schemas/tables/conflicts.avsc)."""
    import orjson

    event = accepted.event
    conflict_id = hashlib.sha256(
        f"{event.event_type}\x00{event.event_id}\x00{event.content_hash}".encode()).hexdigest()[:40]
    return {
        "conflict_id": conflict_id,
        "detected_at": format_timestamp(detected_at),
        "stage": stage,
        "event_type": event.event_type,
        "event_id": event.event_id,
        "event_time": format_timestamp(event.event_time),
        "accepted_content_hash": accepted_hash,
        "conflicting_content_hash": event.content_hash,
        "publish_time": format_timestamp(accepted.publish_time) if accepted.publish_time else None,
        "payload": orjson.dumps(file_line(event)).decode(),
    }


class _DedupFn(beam.DoFn):
    """Remembers each identity with the hash of its accepted content.

    Keyed by a bucket of the identity digest, not by the identity: the memory
    of a bucket is two generations of `memory_s` seconds of processing time
    (the current one and the one before), rotated lazily when the bucket is
    next touched. An identity is therefore remembered for at least
    `memory_s` and at most 2 x `memory_s` after the job first saw it, however
    late its event time, and no timer is ever set: a per-event timer costs
    about 43 us on the FnApiRunner and the DirectRunner scans every pending
    timer on each bundle. State per bucket stays small when `buckets` is
    sized for the rate (about rate x 2 x memory_s / buckets entries).

    A copy with the remembered hash is a duplicate (counted, dropped); one
    with another hash is a conflict (the first stays accepted; the copy goes
    to the conflicts output with both hashes)."""

    MEMORY = userstate.ReadModifyWriteStateSpec("memory", FastPrimitivesCoder())

    def __init__(self, memory_s: int, clock=time.time):
        self.memory_s = memory_s
        self.clock = clock
        self._duplicates = {t: _counter("duplicates", t) for t in event_specs()}
        self._conflicts = {t: _counter("conflicts", t) for t in event_specs()}

    def process(self, element, memory=beam.DoFn.StateParam(MEMORY)):
        _, (digest, accepted) = element
        generation = int(self.clock() // self.memory_s)
        state = memory.read()
        rotated = state is None or state[0] != generation
        if state is None or state[0] < generation - 1:
            state = (generation, {}, {})
        elif state[0] == generation - 1:
            state = (generation, {}, state[1])  # rotate: the current generation becomes the previous
        _, current, previous = state
        event = accepted.event
        seen = current.get(digest) or previous.get(digest)
        if seen is None:
            current[digest] = event.content_hash
            memory.write(state)
            yield accepted
        elif seen == event.content_hash:
            self._duplicates[event.event_type].inc()
            if rotated:  # keep the rotation
                memory.write(state)
        else:
            self._conflicts[event.event_type].inc()
            memory.write(state)
            yield beam.pvalue.TaggedOutput(CONFLICTS, conflict_row(accepted, seen, "dedup",
                                                                    datetime.now(timezone.utc)))


class DeduplicateEvents(beam.PTransform):
    """Accepted -> {'events': first copy of each identity, 'conflicts':
    conflicts-table rows}; duplicates are counted and dropped."""

    def __init__(self, memory_s: int, buckets: int = 16384, clock=time.time):
        super().__init__()
        self.memory_s, self.buckets, self.clock = memory_s, buckets, clock

    def expand(self, accepted):
        buckets = self.buckets

        def by_bucket(acc: Accepted):
            digest = identity_digest(acc.event.event_type, acc.event.event_id)
            return int.from_bytes(digest[:4], "big") % buckets, (digest, acc)

        return (accepted
                | "KeyByIdentityBucket" >> beam.Map(by_bucket).with_output_types(
                    typing.Tuple[int, typing.Tuple[bytes, typing.Any]])
                | "RememberIdentities" >> beam.ParDo(_DedupFn(self.memory_s, self.clock)).with_outputs(
                    CONFLICTS, main="events"))


# -- 3. lateness routing ------------------------------------------------------------------------
class _SplitFn(beam.DoFn):
    """Sends an event whose window can no longer take it to TOO_LATE.

    The runner silently drops elements whose window ended more than the
    allowed lateness before the watermark. The watermark never runs ahead of
    processing time (Dataflow, and the DirectRunner whose Pub/Sub watermark is
    the wall clock), so `now > window end + lateness - margin` catches every
    element the GroupByKey would drop, provided it reaches the GroupByKey
    within `margin`. Those go to their own files instead of vanishing."""

    def __init__(self, window_s: int, lateness_s: int, margin_s: int, clock=time.time):
        self.window_s, self.lateness_s, self.margin_s, self.clock = window_s, lateness_s, margin_s, clock
        self._per_type = {t: _counter("too_late", t) for t in event_specs()}

    def process(self, typed_row, timestamp=beam.DoFn.TimestampParam):
        window_end = (int(timestamp.micros // 1_000_000) // self.window_s + 1) * self.window_s
        if self.clock() > window_end + self.lateness_s - self.margin_s:
            self._per_type[typed_row[0]].inc()
            yield beam.pvalue.TaggedOutput(TOO_LATE, typed_row)
        else:
            yield typed_row


class SplitByLateness(beam.PTransform):
    def __init__(self, window_s: int, lateness_s: int, margin_s: int | None = None, clock=time.time):
        super().__init__()
        self.window_s, self.lateness_s, self.clock = window_s, lateness_s, clock
        self.margin_s = margin_s if margin_s is not None else min(30, lateness_s // 4)

    def expand(self, typed_rows):
        return typed_rows | "SplitTooLate" >> beam.ParDo(
            _SplitFn(self.window_s, self.lateness_s, self.margin_s, self.clock)).with_outputs(TOO_LATE, main="in_time")


# -- 4. window files ------------------------------------------------------------------------------
def shard_of(event_id: str, num_shards: int) -> int:
    """Stable across processes and retries (unlike hash())."""
    if num_shards == 1:
        return 0
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=4).digest(), "big") % num_shards


class _WritePaneFn(beam.DoFn):
    def __init__(self, prefix: str, project: str | None):
        self.prefix, self.project = prefix, project
        self.files = Metrics.counter("files", "written")
        self._late = {t: _counter("late", t) for t in event_specs()}

    def setup(self):
        self._writer = files.FileWriter(self.project)

    def process(self, keyed_rows, window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        (event_type, shard), rows = keyed_rows
        rows = list(rows)
        start = window.start.to_utc_datetime().replace(tzinfo=timezone.utc)
        path = self._writer.create_pane(
            lambda index: files.pane_file_path(self.prefix, event_type, start, index, shard),
            files.ndjson(rows), first_index=pane.index)
        self.files.inc()
        timing = {0: "EARLY", 1: "ON_TIME", 2: "LATE", 3: "UNKNOWN"}.get(pane.timing, str(pane.timing))
        if timing == "LATE":
            self._late[event_type].inc(len(rows))
        _log.info("fired window %s [%s, %s) shard %d pane %d %s: %d events -> %s", event_type,
                  format_timestamp(start), format_timestamp(window.end.to_utc_datetime().replace(tzinfo=timezone.utc)),
                  shard, pane.index, timing, len(rows), path)
        yield {"path": path, "event_type": event_type, "window_start": format_timestamp(start),
               "shard": shard, "pane_index": pane.index, "timing": timing, "count": len(rows)}


class WindowedFiles(beam.PTransform):
    """(event_type, row) stamped with event time -> one NDJSON file per
    (event type, window, pane, shard). On-time pane at the watermark; late
    panes for late events (batched over `late_firing_delay_s`), discarding, so
    files of one window are disjoint and their union is the window."""

    def __init__(self, prefix: str, window_s: int, lateness_s: int, late_firing_delay_s: int,
                 num_shards: int = 1, project: str | None = None, streaming: bool = True):
        super().__init__()
        self.prefix, self.window_s, self.lateness_s = prefix, window_s, lateness_s
        self.late_firing_delay_s, self.num_shards, self.project = late_firing_delay_s, num_shards, project
        self.streaming = streaming

    def _windowing(self):
        if not self.streaming:
            # Batch (backfill, benchmarks): the watermark jumps to the end once,
            # so one pane per window; a late trigger would fire per element.
            return beam.WindowInto(FixedWindows(self.window_s))
        late = (tr.AfterProcessingTime(self.late_firing_delay_s) if self.late_firing_delay_s else tr.AfterCount(1))
        return beam.WindowInto(
            FixedWindows(self.window_s),
            trigger=tr.AfterWatermark(late=late),
            accumulation_mode=tr.AccumulationMode.DISCARDING,
            allowed_lateness=Duration(seconds=self.lateness_s))

    def expand(self, typed_rows):
        num_shards = self.num_shards
        return (
            typed_rows
            | "FixedEventTimeWindows" >> self._windowing()
            | "KeyByTypeAndShard" >> beam.Map(lambda tr_: ((tr_[0], shard_of(tr_[1]["event_id"], num_shards)), tr_[1]))
            | "GroupPane" >> beam.GroupByKey()
            | "WritePaneFile" >> beam.ParDo(_WritePaneFn(self.prefix, self.project))
        )


class _WriteTooLateFn(beam.DoFn):
    def __init__(self, prefix: str, project: str | None):
        self.prefix, self.project = prefix, project

    def setup(self):
        self._writer = files.FileWriter(self.project)

    def process(self, typed_row):
        event_type, row = typed_row
        path = files.too_late_file_path(self.prefix, event_type, parse_timestamp(row["event_time"]), row["event_id"])
        self._writer.write(path, files.ndjson([row]))
        _log.warning("event %s (%s, event time %s) arrived after its window closed; written to %s",
                     row["event_id"], event_type, row["event_time"], path)
        yield path


class TooLateFiles(beam.PTransform):
    def __init__(self, prefix: str, project: str | None = None):
        super().__init__()
        self.prefix, self.project = prefix, project

    def expand(self, typed_rows):
        return typed_rows | "WriteTooLateFile" >> beam.ParDo(_WriteTooLateFn(self.prefix, self.project))


# -- helpers for the edges -----------------------------------------------------------------------------
def to_typed_lines(accepted: Accepted):
    """(event_type, file line) for the file branch."""
    return accepted.event.event_type, file_line(accepted.event)


def table_row_maker(source: str):
    """Accepted -> (table, row, insertId) for the event tables."""

    def to_table_row(accepted: Accepted):
        event = accepted.event
        return (event_specs()[event.event_type].name,
                bigquery_row(event, accepted.publish_time, accepted.ingest_time, source),
                insert_id(event.event_type, event.event_id))

    return to_table_row


def to_dead_letter_rows(row):
    return DEAD_LETTER_TABLE, row, row["dead_letter_id"]


def to_conflict_rows(row):
    return CONFLICTS_TABLE, row, row["conflict_id"]

