"""User sessions: Beam `Sessions` windows of event time per user, closed after
`gap_s` of inactivity (seed 003: a 30-minute timeout), to `user_sessions`.

Who is a user: the schema's `user_field` (`user_activity.user_id`,
`order.customer_id`), one id space, as for the alerts: a customer is a user
who ordered, so a session holds both the clicks and the orders of one person.
Inventory events have no user. The producer's own `metadata.session_id` is
not used: sessions are the job's, by inactivity.

A row describes one session: first and last event time, duration, events,
the mix of activities (orders counted as `order`), the platform most used,
and `converted`: an add_to_cart followed, in event time within the session,
by an order of the same customer.

**Versions and merges.** A session's row is written when it closes (the
watermark passes its last event plus the gap), and again for each late event
within the allowed lateness of the job's `LatenessPolicy` (Beam's default
trigger, accumulating panes: each row is the whole session so far). Open
sessions are not written: early firings (a processing-time trigger on
session windows) stalled Beam 2.77's DirectRunner once windows merged. A
late event can bridge two sessions: Beam merges their windows into one,
whose row then covers both earlier rows. The view `user_sessions_current`
keeps, of the rows of one user, those no other row covers (a wider window,
or the same window with a later pane). An event the watermark has passed by more than the gap plus the
allowed lateness (its own one-event window has expired) is not added to any
session: Beam drops it from the windows (the event tables and files still
hold it, and sql/analytics/session_statistics.sql recomputes sessions from
those).
"""

from __future__ import annotations

import hashlib
import typing
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from pipeline.policy import LatenessPolicy
from schemas.contract import format_timestamp, from_micros, to_micros, user_of

ORDER = "order"


class SessionRow(typing.NamedTuple):
    session_id: str
    user_id: str
    row: dict


def _observation(accepted):
    """(user, (event time us, activity, platform)) of events with a user."""
    event = accepted.event
    user = user_of(event.event_type, event.payload)
    if user is None:
        return
    if event.event_type == ORDER:
        activity, platform = ORDER, None
    else:
        activity = event.payload.get("activity_type")
        platform = (event.payload.get("metadata") or {}).get("platform")
    yield user, (to_micros(event.event_time), activity, platform)


class _SessionCombine(beam.CombineFn):
    """Accumulator: [count, first us, last us, {activity: n}, {platform: n},
    first add_to_cart us or None, last order us or None]. Order-independent,
    so merging windows and accumulating panes give the same answer."""

    def create_accumulator(self):
        return [0, None, None, {}, {}, None, None]

    def add_input(self, acc, value):
        event_us, activity, platform = value
        acc[0] += 1
        acc[1] = event_us if acc[1] is None else min(acc[1], event_us)
        acc[2] = event_us if acc[2] is None else max(acc[2], event_us)
        acc[3][activity] = acc[3].get(activity, 0) + 1
        if platform:
            acc[4][platform] = acc[4].get(platform, 0) + 1
        if activity == "add_to_cart":
            acc[5] = event_us if acc[5] is None else min(acc[5], event_us)
        elif activity == ORDER:
            acc[6] = event_us if acc[6] is None else max(acc[6], event_us)
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            out[0] += acc[0]
            for i, pick in ((1, min), (2, max), (5, min), (6, max)):
                if acc[i] is not None:
                    out[i] = acc[i] if out[i] is None else pick(out[i], acc[i])
            for i in (3, 4):
                for name, n in acc[i].items():
                    out[i][name] = out[i].get(name, 0) + n
        return out

    def extract_output(self, acc):
        return acc


class _ToSessionRow(beam.DoFn):
    def __init__(self, gap_s: int):
        self.gap_s = gap_s

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        user, (count, first_us, last_us, activities, platforms, cart_us, order_us) = element
        start_us, end_us = win.start.micros, win.end.micros
        session_id = hashlib.sha256(f"{user}\x00{start_us}".encode()).hexdigest()[:32]
        version = pane.index + 1
        row = {
            "session_id": session_id,
            "user_id": user,
            "session_start": format_timestamp(from_micros(first_us)),
            "session_end": format_timestamp(from_micros(last_us)),
            "duration_s": (last_us - first_us) / 1_000_000,
            "event_count": count,
            "activity_counts": [{"activity": a, "count": n} for a, n in sorted(activities.items())],
            "platform": max(sorted(platforms), key=platforms.get) if platforms else None,
            "converted": cart_us is not None and order_us is not None and order_us >= cart_us,
            "window_start": format_timestamp(from_micros(start_us)),
            "window_end": format_timestamp(from_micros(end_us)),
            "gap_s": self.gap_s,
            "version": version,
            "timing": PaneInfoTiming.to_string(pane.timing),
            "is_last": bool(pane.is_last),
            "row_id": hashlib.sha256(f"{session_id}\x00{end_us}\x00{version}".encode()).hexdigest()[:40],
            "emitted_at": format_timestamp(datetime.now(timezone.utc)),  # a report field, never a decision
        }
        yield SessionRow(session_id, user, row)


class UserSessions(beam.PTransform):
    """Accepted (deduplicated) events -> SessionRow versions, as the module
    docstring says."""

    def __init__(self, policy: LatenessPolicy, gap_s: int = 1800):
        super().__init__()
        self.policy, self.gap_s = policy, gap_s

    def expand(self, events):
        return (events
                | "KeyByUser" >> beam.FlatMap(_observation).with_output_types(
                    typing.Tuple[str, typing.Tuple[int, str, typing.Optional[str]]])
                | "SessionWindows" >> beam.WindowInto(
                    window.Sessions(self.gap_s),
                    trigger=trigger.DefaultTrigger(),
                    accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                    allowed_lateness=Duration(seconds=self.policy.allowed_lateness_s))
                | "CombineSession" >> beam.CombinePerKey(_SessionCombine())
                | "ToSessionRows" >> beam.ParDo(_ToSessionRow(self.gap_s)).with_output_types(SessionRow))


def session_table_row(session: SessionRow):
    from schemas import SESSIONS_TABLE

    return SESSIONS_TABLE, session.row, session.row["row_id"]
