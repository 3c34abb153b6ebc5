"""Anomaly alerts (pipeline/alerts.py) alone on a TestStream: more than N
events from one user in one minute of event time alert once, at the crossing
event; minutes, users and event types are counted as the contract says."""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipeline.alerts import DetectBursts, alert_id
from pipeline.policy import LatenessPolicy
from schemas.contract import format_timestamp, to_micros
from tests.helpers import BASE, accepted_at, streaming_pipeline, activity, inventory, order

USER = "c0ffee00-0000-4000-8000-000000000001"
POLICY = LatenessPolicy(allowed_lateness_s=180, late_firing_delay_s=10)
NOW = BASE + timedelta(minutes=10)


def streaming():
    return streaming_pipeline()


def acc(body) -> TimestampedValue:
    return accepted_at(body, NOW, BASE)



def clicks(minute: int, n: int, user: str = USER, start: int = 0) -> list[TimestampedValue]:
    """n distinct activity events of `user` in minute `minute` after BASE."""
    return [acc(activity(BASE + timedelta(minutes=minute, milliseconds=100 * (start + i)), user_id=user))
            for i in range(n)]


def one_by_one(stream: TestStream, elements) -> TestStream:
    for element in elements:  # separate bundles: arrival order is the order given
        stream = stream.add_elements([element])
    return stream


def alerts_of(stream: TestStream, wanted, threshold: int = 5, buckets: int = 4096):
    with streaming() as p:
        alerts = p | stream | DetectBursts(threshold, POLICY, buckets)
        assert_that(alerts | beam.Map(lambda a: (a.user_id, a.minute, a.event_count, a.crossing_event_id)),
                    equal_to(wanted))


def minute(m: int) -> str:
    return format_timestamp(BASE + timedelta(minutes=m))


def test_the_event_that_crosses_the_threshold_alerts_once():
    events = clicks(0, 9)
    sixth = events[5].value.event.event_id
    alerts_of(one_by_one(TestStream(), events).advance_watermark_to_infinity(), [(USER, minute(0), 6, sixth)])


def test_exactly_the_threshold_does_not_alert():
    alerts_of(one_by_one(TestStream(), clicks(0, 5)).advance_watermark_to_infinity(), [])


@pytest.mark.parametrize("buckets", [4096, 1])  # 1: every user shares one key
def test_minutes_and_users_are_counted_apart(buckets):
    events = clicks(0, 4) + clicks(1, 4) + clicks(0, 4, user="another-user", start=10)
    alerts_of(one_by_one(TestStream(), events).advance_watermark_to_infinity(), [], buckets=buckets)


def test_orders_and_activity_of_the_same_person_count_together_inventory_never():
    orders = [acc(order(BASE + timedelta(seconds=i), order_id=f"0b7c1c52-8f0e-4e1a-9a53-6f2d4c1e00{i:02d}"))
              for i in range(3)]
    stock = [acc(inventory(BASE + timedelta(seconds=i), inventory_id=f"1a2b3c4d-0000-4000-8000-0000000000{i:02d}"))
             for i in range(10)]
    events = stock + clicks(0, 3) + orders
    last = orders[-1].value.event.event_id
    alerts_of(one_by_one(TestStream(), events).advance_watermark_to_infinity(), [(USER, minute(0), 6, last)])


def test_a_late_event_counts_in_the_minute_of_its_event_time():
    stream = one_by_one(TestStream(), clicks(0, 5))
    stream = stream.advance_watermark_to((BASE + timedelta(minutes=2, seconds=30)).timestamp())  # minute 0 closed
    late = clicks(0, 1, start=50)
    stream = one_by_one(stream, clicks(2, 3) + late).advance_watermark_to_infinity()
    alerts_of(stream, [(USER, minute(0), 6, late[0].value.event.event_id)])


class _State:
    def __init__(self):
        self.value = None

    def read(self):
        return self.value

    def write(self, value):
        self.value = value

    def clear(self):
        self.value = None


class _Timer:
    def __init__(self):
        self.at = None

    def set(self, ts):
        self.at = ts


def test_a_minute_is_forgotten_when_the_watermark_passes_its_end_plus_the_allowed_lateness():
    """The release timer, driven directly (which of a timer and an element a
    runner delivers first is not fixed, so a pipeline test could not pin
    this): minutes whose end + allowed lateness has passed are dropped, the
    timer moves to the next one, and the state is cleared when none is left.
    A far-late burst then counts afresh, under the same alert id (BigQuery
    keeps one row by insertId; alerts_current one per (user, minute))."""
    from apache_beam.utils.timestamp import Timestamp

    from pipeline.alerts import _BurstFn

    fn, counts, release_at, timer = _BurstFn(5, POLICY), _State(), _State(), _Timer()
    def feed(events):
        out = []
        for e in events:
            event = e.value.event
            us = to_micros(event.event_time)
            element = (7, (USER, POLICY.window_start_us(us), event.event_type, event.event_id, us, None))
            out.extend(fn.process(element, counts, release_at, timer))
        return out

    first = feed(clicks(0, 6) + clicks(1, 2))
    end_0 = to_micros(BASE) + (60 + 180) * 1_000_000
    assert len(first) == 1 and timer.at == Timestamp(micros=end_0)
    fn.release_fired(Timestamp(micros=end_0), counts, release_at, timer)
    assert set(counts.read()) == {(USER, to_micros(BASE + timedelta(minutes=1)))}  # minute 0 forgotten, 1 kept
    assert timer.at == Timestamp(micros=end_0 + 60_000_000)
    fn.release_fired(Timestamp(micros=end_0 + 60_000_000), counts, release_at, timer)
    assert counts.read() is None and release_at.read() is None
    again = feed(clicks(0, 6, start=100))
    assert [a.alert_id for a in again] == [a.alert_id for a in first] == [alert_id(USER, to_micros(BASE))]


def test_within_the_allowed_lateness_a_minute_that_alerted_stays_quiet():
    stream = one_by_one(TestStream(), clicks(0, 6))
    stream = stream.advance_watermark_to((BASE + timedelta(minutes=3, seconds=50)).timestamp())  # 10 s left
    stream = one_by_one(stream, clicks(0, 6, start=100)).advance_watermark_to_infinity()
    alerts_of(stream, [(USER, minute(0), 6, clicks(0, 6)[5].value.event.event_id)])
