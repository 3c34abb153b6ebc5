"""Anomaly alerts: more than `threshold` events from one user in one minute
of event time (seed 003: "more than 100 events from one user in one minute",
a fraud signal wanted within a second).

Who is "one user": the field each event schema names as its `user_field`
(`schemas/events/*.avsc`): `user_id` of user_activity and `customer_id` of
order, which share one id space (a customer is a user who ordered).
Inventory events have no user and are not counted.

The alert is emitted by the event that crosses the threshold, as that event
is processed: no window has to close and no timer has to fire first, so the
alert leaves the job in the same bundle as the crossing event. Only
deduplicated events count (this runs after the dedup), and each (user,
minute) alerts at most once.

State is kept per bucket of users (`--alert_buckets`), not per user or per
(user, minute): the key space stays bounded however many users come and go,
and the DirectRunner, which visits every key a stateful step has held and
fires each key's timers in a bundle of its own, stays fast (one key per user
made a local run at 500 events/s fall behind once the timers began to fire).
Each bucket holds a small map of (user, minute) -> count, or FIRED once that
minute alerted. A minute is forgotten when the watermark passes its end plus
the allowed lateness of the job's `LatenessPolicy` (one event-time timer per
bucket, set to the earliest such moment). A far-late event, after its
minute was forgotten, starts a new count: it can alert again only if more
than `threshold` far-late events of that user and minute arrive, and the
alert id (a hash of user and minute) is the same, so BigQuery keeps one row
(insertId) and the `alerts_current` view one alert per (user, minute).
"""

from __future__ import annotations

import hashlib
import typing
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.utils.timestamp import Timestamp

from pipeline.policy import LatenessPolicy
from schemas.contract import format_timestamp, from_micros, to_micros, user_of

FIRED = -1
ALERT_TYPE = "user_burst"


def alert_id(user: str, minute_us: int) -> str:
    """One id per (user, minute): the insertId of the alert row and the
    Pub/Sub attribute consumers dedup on."""
    return hashlib.sha256(f"{ALERT_TYPE}\x00{user}\x00{minute_us}".encode()).hexdigest()[:40]


class Alert(typing.NamedTuple):
    alert_id: str
    alert_type: str
    user_id: str
    minute: str
    threshold: int
    event_count: int
    crossing_event_type: str
    crossing_event_id: str
    crossing_event_time: str
    crossing_publish_time: str | None
    detected_at: str

    def row(self) -> dict:
        return self._asdict()


class _BurstFn(beam.DoFn):
    COUNTS = userstate.ReadModifyWriteStateSpec("counts", FastPrimitivesCoder())  # {(user, minute_us): count | FIRED}
    RELEASE_AT = userstate.ReadModifyWriteStateSpec("release_at", FastPrimitivesCoder())  # micros or None
    # A name no other step's timer has: the FnApiRunner keeps the timers of a
    # fused stage in buffers named by timer family, and two steps' "release"
    # timers in one stage were decoded with each other's coder.
    RELEASE = userstate.TimerSpec("forget_minutes", userstate.TimeDomain.WATERMARK)

    def __init__(self, threshold: int, policy: LatenessPolicy):
        self.threshold = threshold
        self.policy = policy
        self.fired = Metrics.counter("alerts", "alerts_fired")

    def _keep_us(self, minute_us: int) -> int:
        """When the watermark may forget a minute: its end plus the allowed lateness."""
        return minute_us + self.policy.window_s * 1_000_000 + self.policy.allowed_lateness_s * 1_000_000

    def process(self, element, counts_state=beam.DoFn.StateParam(COUNTS),
                release_at=beam.DoFn.StateParam(RELEASE_AT), release=beam.DoFn.TimerParam(RELEASE)):
        _, (user, minute_us, event_type, event_id, event_us, publish_us) = element
        counts = counts_state.read() or {}
        count = counts.get((user, minute_us), 0)
        if count == FIRED:
            return
        count += 1
        if count > self.threshold:
            counts[(user, minute_us)] = FIRED
            self.fired.inc()
            now = datetime.now(timezone.utc)  # a report field (when it was seen), never a decision
            yield Alert(alert_id(user, minute_us), ALERT_TYPE, user, format_timestamp(from_micros(minute_us)),
                        self.threshold, count, event_type, event_id, format_timestamp(from_micros(event_us)),
                        format_timestamp(from_micros(publish_us)) if publish_us is not None else None,
                        format_timestamp(now))
        else:
            counts[(user, minute_us)] = count
        counts_state.write(counts)
        keep = self._keep_us(minute_us)
        current = release_at.read()
        if current is None or keep < current:
            release.set(Timestamp(micros=keep))
            release_at.write(keep)

    @userstate.on_timer(RELEASE)
    def release_fired(self, fired_at=beam.DoFn.TimestampParam, counts_state=beam.DoFn.StateParam(COUNTS),
                      release_at=beam.DoFn.StateParam(RELEASE_AT), release=beam.DoFn.TimerParam(RELEASE)):
        now_us = fired_at.micros
        counts = {k: c for k, c in (counts_state.read() or {}).items() if self._keep_us(k[1]) > now_us}
        if not counts:
            counts_state.clear()
            release_at.clear()
            return
        counts_state.write(counts)
        nxt = min(self._keep_us(minute) for _, minute in counts)
        release.set(Timestamp(micros=nxt))
        release_at.write(nxt)


class DetectBursts(beam.PTransform):
    """Accepted (deduplicated) events -> Alert for each (user, minute of
    event time) with more than `threshold` events, once, as the crossing
    event is processed."""

    def __init__(self, threshold: int, policy: LatenessPolicy, buckets: int = 4096):
        super().__init__()
        self.threshold, self.policy, self.buckets = threshold, policy, buckets

    def expand(self, events):
        buckets, policy = self.buckets, self.policy

        def keyed(accepted):
            # Only what the count and the alert need crosses the shuffle, not the event.
            event = accepted.event
            user = user_of(event.event_type, event.payload)
            if user is not None:
                bucket = int.from_bytes(hashlib.sha256(user.encode()).digest()[:4], "big") % buckets
                event_us = to_micros(event.event_time)
                publish_us = to_micros(accepted.publish_time) if accepted.publish_time else None
                yield bucket, (user, policy.window_start_us(event_us), event.event_type, event.event_id, event_us,
                               publish_us)

        from apache_beam.transforms.window import GlobalWindows

        # State per bucket of users in the global window (like the minute
        # files): the minute is the state's business, not a window's.
        return (events
                | "InGlobalWindow" >> beam.WindowInto(GlobalWindows())
                | "KeyByUserBucket" >> beam.FlatMap(keyed).with_output_types(typing.Tuple[int, typing.Tuple[str, int, str, str, int, typing.Optional[int]]])
                | "CountPerUserMinute" >> beam.ParDo(_BurstFn(self.threshold, self.policy))
                .with_output_types(Alert))


def alert_table_row(alert: Alert):
    """(table, row, insertId) for the table sink."""
    from schemas import ALERTS_TABLE

    return ALERTS_TABLE, alert.row(), alert.alert_id


class PublishAlerts(beam.PTransform):
    """Alerts -> the alerts Pub/Sub topic: the row as JSON, with the alert id
    as an attribute (consumers dedup on it) and the user for filtering."""

    def __init__(self, topic: str):
        super().__init__()
        self.topic = topic

    def expand(self, alerts):
        import orjson
        from apache_beam.io.gcp.pubsub import PubsubMessage

        from schemas.contract import ATTR_ALERT_ID

        return (alerts
                | "ToMessage" >> beam.Map(lambda a: PubsubMessage(
                    orjson.dumps(a.row()), {ATTR_ALERT_ID: a.alert_id, "alert_type": a.alert_type}))
                | "WriteToPubSub" >> beam.io.WriteToPubSub(self.topic, with_attributes=True))
