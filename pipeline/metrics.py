"""Per-minute metrics by event type, written by the job as it runs (seed 003:
events and unique users per minute; seed 000: lag, counts per minute and
duplicates detected).

One row per (minute of event time, event type) and version:

* ``events``: deduplicated events (what the event tables and the files hold);
  ``unique_users``: distinct users among them (exact within the row; the
  schema's ``user_field``, none for inventory);
* ``duplicates`` dropped by the dedup memory, ``conflicts`` (copies with an
  accepted identity and another content, every stage);
* ``dead_letters`` and ``dead_letter_reasons`` (error_type -> count): a dead
  letter has no trusted event time, so it counts in the minute of its
  publish time (else its receipt), under its claimed type or ``unknown``;
* ``late`` and ``far_late``: events published after their minute's end, by
  at most the allowed lateness (late) or more (far late). This is the
  producer's lateness, read from each message (Pub/Sub's publish time, which
  Dataflow's watermark follows): the same on a replay or a restart, and
  checkable against the producer's ledger. The files' own on_time/late/
  far_late (``files_written.timing``) follow the job's watermark instead;
  events without a publish time (tests, backfill) count in neither;
* lag percentiles (p50, p90, p99) from event time to ingest and from publish
  to ingest, from a log histogram with 8 buckets per doubling (a value is
  known to within 9%, which keeps the state small at any rate).

**Update rule.** The minute's counts live in state keyed by (type, minute) in
the global window (like the minute files and the alerts: no window drops
anything). While updates arrive, a new version of the complete row is
written every ``emit_s`` seconds of processing time (so late data updates the
row within seconds), and a last one, ``is_final``, when the watermark passes
the minute's end plus the allowed lateness of the job's `LatenessPolicy`;
then the state is released. Rows are versions, never deltas within a
``generation``: the view ``metrics_per_minute_current`` keeps the highest
version of each (minute, type, generation) and nothing is counted twice.
A generation is one lifetime of that state: a far-late arrival (after the
release) or a restart starts a new one, which counts only what came since;
the view adds the generations' counts (each event, duplicate, conflict and
dead letter is in exactly one), takes the lag percentiles of the largest, and
says ``unique_users_exact = false`` when users came in more than one (their
sum is then an upper bound).

**When the state is lost.** On Dataflow the state survives worker failures
and updates; a drain fires the release timers, so every generation ends
with its final row. A cancelled job, or a local run that is stopped or
killed (the DirectRunner keeps its state in memory), loses what its open
generations counted since their last version (at most ``emit_s`` seconds),
and a replay does not count again what BigQuery already holds. Such a
generation never gets its final row, and a newer job incarnation (every
row says which graph wrote it, ``job_incarnation``) writes after it: the
view marks its (minute, type) ``complete = false``, the dashboard shows it,
and the reconciliation (check 9) holds the job to exact counts only where
``complete`` is true.

Before the state, a stateless step adds up each bundle's observations per
(type, minute), so the state is touched once per key and bundle, not once per
event.
"""

from __future__ import annotations

import hashlib
import math
import time
import typing
import uuid

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.policy import LatenessPolicy
from schemas import event_specs
from schemas.contract import format_timestamp, from_micros, parse_timestamp, to_micros, user_of

UNKNOWN_TYPE = "unknown"  # dead letters whose type is missing or not one of the schemas
BUCKETS_PER_DOUBLING = 8
PERCENTILES = (50, 90, 99)

# Observation kinds (the third field of an observation).
EVENT, DUPLICATE, CONFLICT, DEAD_LETTER = "e", "d", "c", "x"


# -- lag histogram -----------------------------------------------------------------------------------------
def lag_bucket(ms: float) -> int:
    """Bucket of a lag in milliseconds: 0 for <= 1 ms (and clock skew below
    zero), else ceil(log2(ms) x 8): bucket b holds (2^((b-1)/8), 2^(b/8)]."""
    if ms <= 1:
        return 0
    return math.ceil(math.log2(ms) * BUCKETS_PER_DOUBLING)


def bucket_upper_ms(bucket: int) -> int:
    return 1 if bucket <= 0 else round(2 ** (bucket / BUCKETS_PER_DOUBLING))


def percentile(histogram: dict, q: float) -> int | None:
    """The q-th percentile (nearest rank) of a histogram, as its bucket's
    upper bound in ms; None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q / 100 * total)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return bucket_upper_ms(max(histogram))  # not reached


# -- the observations: one small tuple per fact, from each part of the job ------------------------------
def _minute_of(micros: int, policy: LatenessPolicy) -> int:
    return policy.window_start_us(micros)


def lateness_class(minute_us: int, publish_us: int | None, policy: LatenessPolicy) -> int:
    """0 on time, 1 late (published after the minute's end, within the
    allowed lateness), 2 far late; 0 without a publish time."""
    if publish_us is None:
        return 0
    end_us = minute_us + policy.window_s * 1_000_000
    if publish_us <= end_us:
        return 0
    return 1 if publish_us <= end_us + policy.allowed_lateness_s * 1_000_000 else 2


def event_observations(policy: LatenessPolicy):
    def observe(accepted):
        event = accepted.event
        ingest_us = to_micros(accepted.ingest_time)
        event_us = to_micros(event.event_time)
        minute_us = _minute_of(event_us, policy)
        publish_us = to_micros(accepted.publish_time) if accepted.publish_time else None
        publish_lag = (ingest_us - publish_us) / 1000 if publish_us is not None else None
        return (event.event_type, minute_us, EVENT, user_of(event.event_type, event.payload),
                ((ingest_us - event_us) / 1000, publish_lag), lateness_class(minute_us, publish_us, policy))
    return observe


def duplicate_observations(policy: LatenessPolicy):
    def observe(duplicate):
        event_type, event_us = duplicate
        return event_type, _minute_of(event_us, policy), DUPLICATE, None, None, None
    return observe


def conflict_observations(policy: LatenessPolicy):
    def observe(row):
        minute = _minute_of(to_micros(parse_timestamp(row["event_time"])), policy)
        return row["event_type"], minute, CONFLICT, None, None, None
    return observe


def dead_letter_observations(policy: LatenessPolicy):
    """A dead letter counts in the minute of its Beam timestamp: the message's
    (publish time on Pub/Sub) for a rejected message, the event's for a row
    BigQuery refused. A source without timestamps (Beam's minimum) falls back
    to the row's publish time, else its receipt."""
    known = frozenset(event_specs())

    def observe(row, timestamp=beam.DoFn.TimestampParam):
        event_type = row.get("event_type") if row.get("event_type") in known else UNKNOWN_TYPE
        micros = timestamp.micros
        if micros < 0:
            micros = to_micros(parse_timestamp(row.get("publish_time") or row["received_at"]))
        return (event_type, _minute_of(micros, policy), DEAD_LETTER, row.get("error_type") or "unknown",
                None, None)
    return observe


# -- partial counts ------------------------------------------------------------------------------------
def new_counts() -> dict:
    return {"events": 0, "duplicates": 0, "conflicts": 0, "dead_letters": 0, "late": 0, "far_late": 0,
            "reasons": {}, "users": set(), "lag_event": {}, "lag_publish": {}}


def add_observation(counts: dict, kind: str, a, b, c) -> None:
    if kind == EVENT:  # a: user or None, b: (event lag ms, publish lag ms or None), c: lateness class
        counts["events"] += 1
        if a is not None:
            counts["users"].add(a)
        lag_event, lag_publish = b
        bucket = lag_bucket(lag_event)
        counts["lag_event"][bucket] = counts["lag_event"].get(bucket, 0) + 1
        if lag_publish is not None:
            bucket = lag_bucket(lag_publish)
            counts["lag_publish"][bucket] = counts["lag_publish"].get(bucket, 0) + 1
        if c == 1:
            counts["late"] += 1
        elif c == 2:
            counts["far_late"] += 1
    elif kind == DUPLICATE:
        counts["duplicates"] += 1
    elif kind == CONFLICT:
        counts["conflicts"] += 1
    elif kind == DEAD_LETTER:
        counts["dead_letters"] += 1
        counts["reasons"][a] = counts["reasons"].get(a, 0) + 1
    else:
        raise ValueError(f"unknown observation kind {kind!r}")


def merge_counts(into: dict, part: dict) -> None:
    for name in ("events", "duplicates", "conflicts", "dead_letters", "late", "far_late"):
        into[name] += part[name]
    into["users"] |= part["users"]
    for name in ("reasons", "lag_event", "lag_publish"):
        target = into[name]
        for key, n in part[name].items():
            target[key] = target.get(key, 0) + n


class _TallyPerBundle(beam.DoFn):
    """Adds up a bundle's observations per (type, minute); one element per
    key leaves at the end of the bundle, stamped with the newest input
    timestamp of that key (never earlier than what it sums)."""

    def start_bundle(self):
        self._tally: dict = {}

    def process(self, observation, timestamp=beam.DoFn.TimestampParam):
        event_type, minute_us, kind, a, b, c = observation
        key = (event_type, minute_us)
        entry = self._tally.get(key)
        if entry is None:
            entry = self._tally[key] = [new_counts(), timestamp]
        elif timestamp > entry[1]:
            entry[1] = timestamp
        add_observation(entry[0], kind, a, b, c)

    def finish_bundle(self):
        for key, (counts, timestamp) in self._tally.items():
            yield WindowedValue((key, counts), timestamp, [GlobalWindow()])
        self._tally = {}


class MetricsRow(typing.NamedTuple):
    metrics_id: str
    minute: str
    event_type: str
    generation: str
    version: int
    is_final: bool
    emitted_at: str
    row: dict


class _MinuteMetricsFn(beam.DoFn):
    COUNTS = userstate.ReadModifyWriteStateSpec("minute_metrics", FastPrimitivesCoder())
    # Timer names no other step uses (the FnApiRunner keys fused timers by family name).
    EMIT = userstate.TimerSpec("emit_metrics", userstate.TimeDomain.REAL_TIME)
    RELEASE = userstate.TimerSpec("release_metrics", userstate.TimeDomain.WATERMARK)

    def __init__(self, policy: LatenessPolicy, emit_s: float, clock=time.time, incarnation: str | None = None):
        self.policy, self.emit_s, self.clock = policy, emit_s, clock
        self.incarnation = incarnation or uuid.uuid4().hex[:16]
        self.rows = Metrics.counter("metrics", "rows_emitted")
        self.generations = Metrics.counter("metrics", "generations")

    def process(self, element, state=beam.DoFn.StateParam(COUNTS), emit=beam.DoFn.TimerParam(EMIT),
                release=beam.DoFn.TimerParam(RELEASE)):
        (event_type, minute_us), part = element
        acc = state.read()
        if acc is None:
            # One lifetime of this (type, minute)'s state; its rows are versions 1, 2, ...
            acc = {"generation": uuid.uuid4().hex[:16], "version": 0, "emit_set": False, "counts": new_counts()}
            self.generations.inc()
            end_us = minute_us + self.policy.window_s * 1_000_000
            release.set(Timestamp(micros=end_us) + self.policy.allowed_lateness)
        merge_counts(acc["counts"], part)
        if not acc["emit_set"]:
            emit.set(Timestamp(self.clock() + self.emit_s))
            acc["emit_set"] = True
        state.write(acc)

    @userstate.on_timer(EMIT)
    def emit_fired(self, key=beam.DoFn.KeyParam, state=beam.DoFn.StateParam(COUNTS)):
        acc = state.read()
        if acc is None:
            return  # released meanwhile, with a final row
        acc["emit_set"] = False
        yield self._row(key, acc, final=False)
        state.write(acc)

    @userstate.on_timer(RELEASE)
    def release_fired(self, key=beam.DoFn.KeyParam, state=beam.DoFn.StateParam(COUNTS),
                      emit=beam.DoFn.TimerParam(EMIT)):
        acc = state.read()
        if acc is not None:
            yield self._row(key, acc, final=True)
        state.clear()
        emit.clear()

    def _row(self, key, acc: dict, final: bool) -> MetricsRow:
        event_type, minute_us = key
        acc["version"] += 1
        counts = acc["counts"]
        has_users = event_specs().get(event_type) is not None and event_specs()[event_type].user_field
        minute = format_timestamp(from_micros(minute_us))
        metrics_id = hashlib.sha256(
            f"{event_type}\x00{minute_us}\x00{acc['generation']}\x00{acc['version']}".encode()).hexdigest()[:40]
        row = {
            "metrics_id": metrics_id, "minute": minute, "event_type": event_type,
            "generation": acc["generation"], "version": acc["version"], "is_final": final,
            "events": counts["events"], "unique_users": len(counts["users"]) if has_users else None,
            "duplicates": counts["duplicates"], "conflicts": counts["conflicts"],
            "dead_letters": counts["dead_letters"],
            "dead_letter_reasons": [{"reason": r, "count": n} for r, n in sorted(counts["reasons"].items())],
            "late": counts["late"], "far_late": counts["far_late"],
            "emitted_at": format_timestamp(from_micros(int(self.clock() * 1_000_000))),
            "job_incarnation": self.incarnation,
        }
        for name in ("lag_event", "lag_publish"):
            for q in PERCENTILES:
                row[f"{name}_p{q}_ms"] = percentile(counts[name], q)
        self.rows.inc()
        return MetricsRow(metrics_id, minute, event_type, acc["generation"], acc["version"], final,
                          row["emitted_at"], row)


class MinuteMetrics(beam.PTransform):
    """Observations (the tuples made by the *_observations functions) ->
    MetricsRow versions per (minute, type), as the module docstring says."""

    def __init__(self, policy: LatenessPolicy, emit_s: float = 5.0, clock=time.time, incarnation: str | None = None):
        super().__init__()
        self.policy, self.emit_s, self.clock = policy, emit_s, clock
        # Made once, when the graph is built: every worker of a Dataflow job
        # unpickles the same value; a local process, a restart or an update
        # builds a new graph and so a new incarnation.
        self.incarnation = incarnation or uuid.uuid4().hex[:16]

    def expand(self, observations):
        return (observations
                | "InGlobalWindow" >> beam.WindowInto(GlobalWindows())
                | "TallyPerBundle" >> beam.ParDo(_TallyPerBundle()).with_output_types(
                    typing.Tuple[typing.Tuple[str, int], typing.Any])
                | "CountPerMinute" >> beam.ParDo(_MinuteMetricsFn(self.policy, self.emit_s, self.clock,
                                                                  self.incarnation))
                .with_output_types(MetricsRow))


def metrics_table_row(row: MetricsRow):
    """(table, row, insertId) for the table sink."""
    from schemas import METRICS_TABLE

    return METRICS_TABLE, row.row, row.metrics_id
