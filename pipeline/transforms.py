"""Composite transforms of the job, each with its own parameters and metrics.

    messages -> ParseEvents -> DeduplicateByEventId -> +-> event tables (BigQuery)
                     |                                  +-> SplitByLateness -> WindowedFiles (GCS)
                     v                                                      \\-> TooLateFiles (GCS)
                dead letters (BigQuery)

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
from apache_beam.coders import BooleanCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import userstate
from apache_beam.transforms.window import FixedWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration

from pipeline import files
from pipeline.validation import (Limits, Rejected, dead_letter_row, format_timestamp, parse_message,
                                 parse_timestamp)
from schemas import event_specs

_log = logging.getLogger(__name__)
DEAD_LETTER = "dead_letter"
TOO_LATE = "too_late"


def _counter(name: str, event_type: str | None = None):
    return Metrics.counter("events", f"{name}_{event_type}" if event_type else name)


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


def event_row(event, ingest_time: datetime, source: str) -> dict:
    """The row stored in BigQuery and in the files: envelope + payload, with
    the payload's timestamps normalised to UTC."""
    spec = event_specs()[event.event_type]
    row = {
        "event_id": event.event_id,
        "event_time": format_timestamp(event.event_time),
        "publish_time": format_timestamp(event.publish_time) if event.publish_time else None,
        "ingest_time": format_timestamp(ingest_time),
        "source": source,
    }
    for f in spec.payload_fields:
        value = event.payload.get(f["name"])
        if f.get("format") == "date-time" and value is not None:
            value = format_timestamp(parse_timestamp(value))
        row[f["name"]] = value
    return row


class _ParseFn(beam.DoFn):
    def __init__(self, limits: Limits, source: str):
        self.limits = limits
        self.source = source
        self.read = _counter("read")
        self.invalid = _counter("invalid")
        self.lag = Metrics.distribution("events", "lag_ms")
        self._per_type = {t: (_counter("valid", t), Metrics.distribution("events", f"lag_ms_{t}"))
                          for t in event_specs()}

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
        valid, lag = self._per_type[event.event_type]
        valid.inc()
        lag_ms = int((now - event.event_time).total_seconds() * 1000)
        self.lag.update(lag_ms)
        lag.update(lag_ms)
        row = event_row(event, now, self.source)
        # Event time comes from the payload, never from arrival.
        yield TimestampedValue((event.event_id, (event.event_type, row)), event.timestamp)


class ParseEvents(beam.PTransform):
    """Messages -> {'events': (event_id, (event_type, row)) stamped with event
    time, 'dead_letter': dead-letter rows}."""

    def __init__(self, limits: Limits = Limits(), source: str = "stream"):
        super().__init__()
        self.limits, self.source = limits, source

    def expand(self, messages):
        return messages | "ParseAndValidate" >> beam.ParDo(_ParseFn(self.limits, self.source)).with_outputs(
            DEAD_LETTER, main="events")


# -- 2. dedup by event id -------------------------------------------------------------------
class _DedupFn(beam.DoFn):
    """First copy of each event_id passes; later copies are counted and
    dropped. The memory of an id expires `horizon` after its event time (an
    event-time timer), so state stays bounded."""

    SEEN = userstate.ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRY = userstate.TimerSpec("expiry", userstate.TimeDomain.WATERMARK)

    def __init__(self, horizon_s: int):
        self.horizon = Duration(seconds=horizon_s)
        self.duplicates = _counter("duplicates")
        self._per_type = {t: _counter("duplicates", t) for t in event_specs()}

    def process(self, element, timestamp=beam.DoFn.TimestampParam,
                seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY)):
        _, typed_row = element
        if seen.read():
            self.duplicates.inc()
            self._per_type[typed_row[0]].inc()
            return
        seen.write(True)
        expiry.set(timestamp + self.horizon)
        yield typed_row

    @userstate.on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


class DeduplicateByEventId(beam.PTransform):
    """(event_id, value) -> value, one per event_id within the horizon."""

    def __init__(self, horizon_s: int):
        super().__init__()
        self.horizon_s = horizon_s

    def expand(self, keyed):
        # A str key type gives the state a deterministic key coder.
        return keyed | "DropDuplicateIds" >> beam.ParDo(_DedupFn(self.horizon_s)).with_input_types(
            typing.Tuple[str, typing.Any])


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


# -- helpers for the BigQuery edge ------------------------------------------------------------------
def to_table_rows(typed_row):
    event_type, row = typed_row
    return event_specs()[event_type].name, row, row["event_id"]


def to_dead_letter_rows(row):
    return "dead_letter", row, row["dead_letter_id"]

