"""Composite transforms of the job, each with its own parameters and metrics.

    messages -> ParseEvents -> SkipStoredEvents -> DeduplicateEvents -+-> event tables (BigQuery)
                     |          (local replays)  |                     +-> MinuteFiles -> files
                     v                           v
              dead letters            conflicts (BigQuery)

Sources and sinks stay at the edges (`pipeline.graph`); everything here is
testable with TestStream and plain in-memory elements.
"""

from __future__ import annotations

import logging
import time
import typing
from datetime import datetime, timezone

import apache_beam as beam
import orjson
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.window import TimestampedValue

from pipeline.progress import STALLS
from pipeline.validation import Limits, Rejected, dead_letter_row, parse_message
from schemas import CONFLICTS_TABLE, DEAD_LETTER_TABLE, event_specs
from schemas.contract import (ATTR_SOURCE_FILE, ATTR_SOURCE_LINE, Canonical, bigquery_row, conflict_row,
                              format_timestamp, from_micros, identity_digest, insert_id, line_bytes, to_micros)

_log = logging.getLogger(__name__)
DEAD_LETTER = "dead_letter"
CONFLICTS = "conflicts"
DUPLICATES = "duplicates"
_MAX_FIELD_COUNTERS = 50  # distinct unknown-field counters per worker: names come from producers


def _counter(name: str, event_type: str | None = None):
    return Metrics.counter("events", f"{name}_{event_type}" if event_type else name)


class Accepted(typing.NamedTuple):
    """A valid event on its way through the job."""

    event: Canonical
    publish_time: datetime | None
    ingest_time: datetime
    # A backfill's record: "<file>#<line, 10 digits>", its place in the
    # history (the batch dedup keeps the first copy in that order); None on
    # the stream.
    origin: str | None = None


class AcceptedCoder(beam.coders.Coder):
    """How an Accepted event crosses a shuffle. Beam's fallback (pickle of a
    NamedTuple holding a dataclass) costs about 40 us per element, a third of
    the job's budget per event at 10,000 events/s per core. A canonical
    payload is plain JSON by construction (NUMERIC and timestamps are text),
    so one orjson array carries it exactly; anything orjson cannot carry
    exactly (an integer beyond 64 bits in the unknown fields) falls back to
    pickle, marked by the first byte."""

    _JSON, _PICKLE = b"j", b"p"

    def encode(self, value: "Accepted") -> bytes:
        import pickle

        event = value.event
        try:
            return self._JSON + orjson.dumps([
                event.event_type, event.event_id, to_micros(event.event_time), event.payload, event.extra,
                event.content_hash, event.unknown_fields, event.explicit_id,
                to_micros(value.publish_time) if value.publish_time else None, to_micros(value.ingest_time),
                value.origin])
        except TypeError:
            return self._PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> "Accepted":
        import pickle

        if encoded[:1] == self._PICKLE:
            return pickle.loads(encoded[1:])
        (event_type, event_id, event_us, payload, extra, chash, unknown, explicit, publish_us,
         ingest_us, *origin) = orjson.loads(encoded[1:])  # no origin: an element encoded before it existed
        event = Canonical(event_type, event_id, from_micros(event_us), payload, extra, chash, tuple(unknown), explicit)
        return Accepted(event, from_micros(publish_us) if publish_us is not None else None, from_micros(ingest_us),
                        origin[0] if origin else None)

    def is_deterministic(self) -> bool:
        return False  # a value coder only: dict order is the payload's own

    def to_type_hint(self):
        return Accepted


beam.coders.registry.register_coder(Accepted, AcceptedCoder)


# -- 1. parse and validate --------------------------------------------------------------
def origin_of(attributes) -> str | None:
    """Where a backfill's record comes from, as a sortable text; None for
    messages that do not say (the stream's)."""
    if not attributes or ATTR_SOURCE_FILE not in attributes:
        return None
    try:
        line = int(attributes.get(ATTR_SOURCE_LINE) or 0)
    except ValueError:
        line = 0
    return f"{attributes[ATTR_SOURCE_FILE]}#{line:010d}"


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
        if publish_time is not None:  # how far behind the producer the job is (local crash recovery reads it)
            STALLS.lag((now - publish_time).total_seconds())
        valid, lag, with_unknown = self._per_type[event.event_type]
        valid.inc()
        lag_ms = int((now - event.event_time).total_seconds() * 1000)
        self.lag.update(lag_ms)
        lag.update(lag_ms)
        if event.unknown_fields:
            with_unknown.inc()
            self._count_unknown(event)
        # Event time comes from the payload, never from arrival.
        yield TimestampedValue(Accepted(event, publish_time, now, origin_of(attributes)), event.event_time.timestamp())

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
def accepted_conflict_row(accepted: Accepted, accepted_hash: str, stage: str, detected_at: datetime) -> dict:
    """The conflicts table row for a copy whose identity was accepted with
    another content."""
    event = accepted.event
    return conflict_row(stage=stage, event_type=event.event_type, event_id=event.event_id,
                        event_time=format_timestamp(event.event_time), accepted_hash=accepted_hash,
                        conflicting_hash=event.content_hash,
                        publish_time=format_timestamp(accepted.publish_time) if accepted.publish_time else None,
                        payload=line_bytes(event).decode().rstrip("\n"), detected_at=detected_at)


class _DedupFn(beam.DoFn):
    """Remembers each identity with the hash of its accepted content.

    Keyed by a bucket of the identity digest, not by the identity: the memory
    of a bucket is two generations of `memory_s` seconds of processing time
    (the current one and the one before), rotated lazily when the bucket is
    next touched. An identity is therefore remembered for at least
    `memory_s` and at most 2 x `memory_s` after the job first saw it, however
    late its event time, and no timer is ever set: a per-event timer costs
    about 43 us on the FnApiRunner and the DirectRunner scans every pending
    timer on each bundle.

    The memory is one bag of (generation, digest, content hash): a new
    identity is one append, and a bucket's bag is read once per bundle; when
    it holds identities older than the previous generation, it is rewritten
    without them (once per generation and bucket). A single value holding the
    whole map had to be re-encoded on every new identity, a cost that grows
    with the bucket (at 500 events/s and 256 buckets, 1,100 entries after 10
    minutes: ~300 us per event). Size `buckets` for the rate (about rate x 2 x
    memory_s / buckets entries per bucket).

    A copy with the remembered hash is a duplicate (counted, dropped); one
    with another hash is a conflict (the first stays accepted; the copy goes
    to the conflicts output with both hashes)."""

    MEMORY = userstate.BagStateSpec("memory", FastPrimitivesCoder())  # (generation, digest, content hash)

    def __init__(self, memory_s: int, clock=time.time, emit_duplicates: bool = False):
        self.memory_s = memory_s
        self.clock = clock
        self.emit_duplicates = emit_duplicates
        self._duplicates = {t: _counter("duplicates", t) for t in event_specs()}
        self._conflicts = {t: _counter("conflicts", t) for t in event_specs()}

    def start_bundle(self):
        self._known: dict = {}  # bucket -> (generation, digest -> content hash), read once per bundle

    def _load(self, bucket, now_gen: int, memory) -> dict:
        entries = list(memory.read())
        kept = [e for e in entries if e[0] >= now_gen - 1]
        if len(kept) != len(entries):  # forget what is older than the previous generation
            memory.clear()
            for entry in kept:
                memory.add(entry)
        known = {digest: content_hash for _, digest, content_hash in kept}
        self._known[bucket] = (now_gen, known)
        return known

    def process(self, element, memory=beam.DoFn.StateParam(MEMORY)):
        bucket, (digest, accepted) = element
        now_gen = int(self.clock() // self.memory_s)
        cached = self._known.get(bucket)
        known = cached[1] if cached is not None and cached[0] == now_gen else self._load(bucket, now_gen, memory)
        event = accepted.event
        seen = known.get(digest)
        if seen is None:
            known[digest] = event.content_hash
            memory.add((now_gen, digest, event.content_hash))
            yield accepted
        elif seen == event.content_hash:
            self._duplicates[event.event_type].inc()
            if self.emit_duplicates:  # for the per-minute metrics: (type, event time), not the event
                yield beam.pvalue.TaggedOutput(DUPLICATES, (event.event_type, to_micros(event.event_time)))
        else:
            self._conflicts[event.event_type].inc()
            yield beam.pvalue.TaggedOutput(CONFLICTS, accepted_conflict_row(accepted, seen, "dedup",
                                                                             datetime.now(timezone.utc)))


class DeduplicateEvents(beam.PTransform):
    """Accepted -> {'events': first copy of each identity, 'conflicts':
    conflicts-table rows, 'duplicates': (event type, event time us) of each
    copy dropped, when `emit_duplicates`}; duplicates are counted and dropped."""

    def __init__(self, memory_s: int, buckets: int = 16384, clock=time.time, emit_duplicates: bool = False):
        super().__init__()
        self.memory_s, self.buckets, self.clock = memory_s, buckets, clock
        self.emit_duplicates = emit_duplicates

    def expand(self, accepted):
        buckets = self.buckets

        def by_bucket(acc: Accepted):
            digest = identity_digest(acc.event.event_type, acc.event.version_id)  # a change is a version of its own
            return int.from_bytes(digest[:4], "big") % buckets, (digest, acc)

        return (accepted
                | "KeyByIdentityBucket" >> beam.Map(by_bucket).with_output_types(
                    typing.Tuple[int, typing.Tuple[bytes, Accepted]])
                | "RememberIdentities" >> beam.ParDo(_DedupFn(self.memory_s, self.clock, self.emit_duplicates))
                .with_outputs(CONFLICTS, DUPLICATES, main="events"))


STORED = "stored"


class _SkipStoredFn(beam.DoFn):
    """Before dedup, when a local run replays the subscription: an event
    BigQuery already holds (`seen`: digest -> content hash) goes on to the
    files only (its minute folder may still lack it: its file was pending at
    the crash), never to BigQuery again; a different content under a stored
    identity is a conflict with the stored copy, and goes nowhere else."""

    def __init__(self, seen: dict):
        self.seen = seen
        self.skipped = Metrics.counter("events", "replayed_already_stored")

    def process(self, accepted: Accepted):
        event = accepted.event
        stored = self.seen.get(identity_digest(event.event_type, event.version_id))
        if stored is None:
            yield accepted
        elif stored == event.content_hash:
            self.skipped.inc()
            yield beam.pvalue.TaggedOutput(STORED, accepted)
        else:
            yield beam.pvalue.TaggedOutput(CONFLICTS, accepted_conflict_row(accepted, stored, "replay",
                                                                             datetime.now(timezone.utc)))


class SkipStoredEvents(beam.PTransform):
    """Accepted -> {'events': not stored yet, 'stored': already in BigQuery
    (for the files only), 'conflicts': rows}. `seen` None or empty passes
    everything through."""

    def __init__(self, seen: dict | None):
        super().__init__()
        self.seen = seen or {}

    def expand(self, accepted):
        return accepted | "SkipAlreadyStored" >> beam.ParDo(_SkipStoredFn(self.seen)).with_outputs(
            CONFLICTS, STORED, main="events")


# -- helpers for the edges -----------------------------------------------------------------------------
def table_row_maker(source: str):
    """Accepted -> (table, row, insertId) for the event tables."""

    def to_table_row(accepted: Accepted):
        event = accepted.event
        return (event_specs()[event.event_type].name,
                bigquery_row(event, accepted.publish_time, accepted.ingest_time, source),
                insert_id(event.event_type, event.version_id))

    return to_table_row


def to_dead_letter_rows(row):
    return DEAD_LETTER_TABLE, row, row["dead_letter_id"]


def to_conflict_rows(row):
    return CONFLICTS_TABLE, row, row["conflict_id"]

