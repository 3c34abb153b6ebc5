"""User sessions (pipeline/sessions.py) on a TestStream: 30-minute
inactivity windows per user, orders counted in the customer's session,
converted sessions, and a late event that bridges two sessions merging them."""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that

from pipeline.policy import LatenessPolicy
from pipeline.sessions import UserSessions
from schemas.contract import format_timestamp
from tests.helpers import BASE, accepted_at, activity, inventory, order, streaming_pipeline

USER = "c0ffee00-0000-4000-8000-000000000001"
POLICY = LatenessPolicy(allowed_lateness_s=180, late_firing_delay_s=5)
GAP = 1800


def at(minutes: float):
    return BASE + timedelta(minutes=minutes)


def click(minutes: float, kind="view_product", user=USER, platform="web"):
    return accepted_at(activity(at(minutes), user_id=user, activity_type=kind,
                                metadata={"session_id": "s", "platform": platform}), at(minutes + 1), at(minutes))


def bought(minutes: float, customer=USER, order_id="0b7c1c52-8f0e-4e1a-9a53-6f2d4c1e0009"):
    return accepted_at(order(at(minutes), order_id=order_id, customer_id=customer), at(minutes + 1), at(minutes))


def current(rows):
    """What the view user_sessions_current keeps (its SQL runs on the
    emulator in tests/test_end_to_end.py): rows no other row of the user covers."""
    def covers(o, s):
        return (o["user_id"] == s["user_id"] and o["window_start"] <= s["window_start"]
                and o["window_end"] >= s["window_end"]
                and (o["window_start"] < s["window_start"] or o["window_end"] > s["window_end"]
                     or o["version"] > s["version"]))
    return [s for s in rows if not any(covers(o, s) for o in rows)]


def run(stream, check):
    with streaming_pipeline() as p:
        sessions = p | stream | UserSessions(POLICY, GAP)
        assert_that(sessions | beam.Map(lambda s: s.row), check)


def test_sessions_end_after_the_gap_and_count_what_the_user_did():
    other = "0ther000-0000-4000-8000-000000000002"
    stream = (TestStream()
              .advance_watermark_to(at(0).timestamp())
              .add_elements([click(0), click(5, "add_to_cart"), bought(10), click(12, platform="mobile"),
                             click(13, platform="mobile"), click(14, platform="mobile"),
                             click(50),                                   # 36 minutes later: a second session
                             click(1, user=other, kind="add_to_cart"),    # carted, never ordered
                             accepted_at(inventory(at(2)), at(3))])       # no user: no session
              .advance_watermark_to(at(200).timestamp())
              .advance_watermark_to_infinity())

    def check(rows):
        got = sorted((r["user_id"], r["session_start"], r["session_end"], r["event_count"], r["converted"],
                      r["platform"], r["timing"]) for r in current(rows))
        assert got == sorted([
            (USER, format_timestamp(at(0)), format_timestamp(at(14)), 6, True, "mobile", "ON_TIME"),
            (USER, format_timestamp(at(50)), format_timestamp(at(50)), 1, False, "web", "ON_TIME"),
            (other, format_timestamp(at(1)), format_timestamp(at(1)), 1, False, "web", "ON_TIME"),
        ]), got
        first = next(r for r in current(rows) if r["session_start"] == format_timestamp(at(0)))
        assert first["duration_s"] == 14 * 60
        assert first["activity_counts"] == [{"activity": "add_to_cart", "count": 1}, {"activity": "order", "count": 1},
                                            {"activity": "view_product", "count": 4}]
        assert first["window_end"] == format_timestamp(at(14 + GAP / 60))

    run(stream, check)


def test_an_order_before_the_cart_is_not_a_conversion():
    stream = (TestStream().advance_watermark_to(at(0).timestamp())
              .add_elements([bought(0), click(1, "add_to_cart")])
              .advance_watermark_to(at(200).timestamp()).advance_watermark_to_infinity())

    def check(rows):
        assert [(r["event_count"], r["converted"]) for r in current(rows)] == [(2, False)]

    run(stream, check)


def test_a_late_event_that_bridges_two_sessions_merges_them():
    """Clicks at 0 and at 40 minutes are two sessions (gap 30). The watermark
    passes 30 minutes: the first closes (on time). A late click at 20
    minutes, within the allowed lateness, bridges them: one session from 0
    to 40 with 3 events, which covers both earlier rows."""
    stream = (TestStream()
              .advance_watermark_to(at(0).timestamp())
              .add_elements([click(0)])
              .add_elements([click(40)])
              .advance_watermark_to(at(31).timestamp())        # session [0, 30) closes on time
              .add_elements([click(20, "add_to_cart")])         # late: 1 minute after that close
              .advance_watermark_to(at(200).timestamp())
              .advance_watermark_to_infinity())

    def check(rows):
        assert any(r["timing"] == "ON_TIME" and r["event_count"] == 1 and r["session_start"] == format_timestamp(at(0))
                   for r in rows), rows  # the first session's row before the bridge
        now = current(rows)
        assert [(r["session_start"], r["session_end"], r["event_count"]) for r in now] == [
            (format_timestamp(at(0)), format_timestamp(at(40)), 3)], now

    run(stream, check)


def test_an_event_later_than_the_allowed_lateness_does_not_reopen_a_session():
    stream = (TestStream()
              .advance_watermark_to(at(0).timestamp())
              .add_elements([click(0)])
              .advance_watermark_to(at(80).timestamp())
              .add_elements([click(10)])                        # its own window [10, 40) expired at 43
              .advance_watermark_to(at(200).timestamp())
              .advance_watermark_to_infinity())

    def check(rows):
        assert [(r["session_start"], r["event_count"]) for r in current(rows)] == [(format_timestamp(at(0)), 1)]

    run(stream, check)
