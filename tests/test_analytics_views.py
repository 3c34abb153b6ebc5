"""The analytics views on the BigQuery emulator.

metrics_per_minute_current: the last version of each generation counts,
generations add up, distinct users are flagged inexact when they come from
two generations, dead-letter reasons are summed, the lag percentiles are
those of the largest generation.

user_sessions_current: of a user's session rows, those no wider window or
later version covers: a merged session replaces the two it bridged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.clients import bigquery_client
from provision import ensure_dataset, ensure_tables_api, ensure_views
from reconcile.checks import query
from schemas.contract import format_timestamp
from tests.helpers import BASE

pytestmark = pytest.mark.stack
DATASET = "metrics_view"


def _row(minute, event_type, generation, version, events, users=None, final=False, reasons=(), lag=100,
         incarnation="job-2", **more):
    row = {"metrics_id": f"{event_type}-{minute:%H%M}-{generation}-{version}", "minute": format_timestamp(minute),
           "event_type": event_type, "generation": generation, "version": version, "is_final": final,
           "events": events, "unique_users": users, "duplicates": more.get("duplicates", 0),
           "conflicts": more.get("conflicts", 0), "dead_letters": sum(n for _, n in reasons),
           "dead_letter_reasons": [{"reason": r, "count": n} for r, n in reasons],
           "late": more.get("late", 0), "far_late": more.get("far_late", 0),
           # job-1 stopped before job-2 started
           "emitted_at": format_timestamp(BASE + timedelta(minutes=5 if incarnation == "job-2" else 4, seconds=version)),
           "job_incarnation": incarnation}
    for name in ("lag_event", "lag_publish"):
        for q in (50, 90, 99):
            row[f"{name}_p{q}_ms"] = lag * q // 50
    return row


@pytest.fixture(scope="module")
def view(stack):
    client = bigquery_client(stack.project)
    ensure_dataset(client, stack.project, DATASET, "US")
    ensure_tables_api(client, stack.project, DATASET)
    ensure_views(client, stack.project, DATASET)
    m0, m1, m2 = BASE, BASE + timedelta(minutes=1), BASE + timedelta(minutes=2)
    rows = [
        # minute 0, user_activity: generation g1 versions 1..3 (the last counts; an older job wrote them and
        # ended the generation), then a far-late g2
        _row(m0, "user_activity", "g1", 1, 5, users=2, duplicates=1, incarnation="job-1"),
        _row(m0, "user_activity", "g1", 3, 9, users=3, duplicates=2, late=2, final=True, lag=200, incarnation="job-1"),
        _row(m0, "user_activity", "g1", 2, 7, users=3, duplicates=2, late=1, incarnation="job-1"),
        _row(m0, "user_activity", "g2", 1, 2, users=1, far_late=2, final=True, lag=9000),
        # minute 0, unknown: dead letters in two generations
        _row(m0, "unknown", "g3", 1, 0, reasons=[("invalid_json", 2), ("unknown_event_type", 1)], final=True),
        _row(m0, "unknown", "g4", 1, 0, reasons=[("invalid_json", 1)]),
        # minute 1, inventory: one generation of the running job, not final yet
        _row(m1, "inventory", "g5", 1, 4, conflicts=1),
        # minute 2, order: job-1 stopped while the minute was open (no final row), job-2 counted on
        _row(m2, "order", "g6", 1, 3, users=3, incarnation="job-1"),
        _row(m2, "order", "g7", 1, 2, users=2),
    ]
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.metrics_per_minute", rows,
                                       row_ids=[r["metrics_id"] for r in rows], retry=None)
    # A retried insert that the insertId did not catch: the same version twice.
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.metrics_per_minute", rows[1:2] + rows[4:5],
                                       retry=None)
    got = query(client, f"SELECT * FROM `{stack.project}.{DATASET}.metrics_per_minute_current` "
                        "ORDER BY minute, event_type")
    return {(r["minute"], r["event_type"]): r for r in got}


def test_versions_and_generations(view):
    m0, m1 = BASE, BASE + timedelta(minutes=1)
    activity = view[(m0, "user_activity")]
    assert (activity["events"], activity["duplicates"], activity["late"], activity["far_late"]) == (11, 2, 2, 2)
    assert activity["generations"] == 2 and activity["is_final"]
    assert activity["unique_users"] == 4 and activity["unique_users_exact"] is False  # 3 + 1: an upper bound
    assert activity["lag_event_p50_ms"] == 200  # the largest generation's (g1, version 3)
    inventory = view[(m1, "inventory")]
    assert (inventory["events"], inventory["conflicts"], inventory["generations"]) == (4, 1, 1)
    assert inventory["is_final"] is False and inventory["unique_users"] is None
    assert inventory["unique_users_exact"] is True


def test_a_generation_whose_job_stopped_before_its_final_row_makes_the_minute_incomplete(view):
    m0, m1, m2 = BASE, BASE + timedelta(minutes=1), BASE + timedelta(minutes=2)
    # an older job's generation that ended with its final row, and the running job's open one: complete
    assert view[(m0, "user_activity")]["complete"] is True and view[(m1, "inventory")]["complete"] is True
    order = view[(m2, "order")]
    assert order["complete"] is False and (order["events"], order["generations"]) == (5, 2)


def test_dead_letter_reasons_add_up(view):
    unknown = view[(BASE, "unknown")]
    assert unknown["dead_letters"] == 4
    assert [(r["reason"], r["count"]) for r in unknown["dead_letter_reasons"]] == [
        ("invalid_json", 3), ("unknown_event_type", 1)]
    assert len(view) == 4


def _session(user, start_min, end_min, version, events, gap_min=30, row_id=None):
    start, end = BASE + timedelta(minutes=start_min), BASE + timedelta(minutes=end_min)
    return {"row_id": row_id or f"{user}-{start_min}-{end_min}-{version}", "session_id": f"{user}-{start_min}",
            "user_id": user, "session_start": format_timestamp(start), "session_end": format_timestamp(end),
            "duration_s": (end - start).total_seconds(), "event_count": events,
            "activity_counts": [{"activity": "view_product", "count": events}], "platform": "web",
            "converted": False, "window_start": format_timestamp(start),
            "window_end": format_timestamp(end + timedelta(minutes=gap_min)), "gap_s": gap_min * 60,
            "version": version, "timing": "ON_TIME" if version == 1 else "LATE", "is_last": False,
            "emitted_at": format_timestamp(BASE + timedelta(hours=2, seconds=version))}


def test_a_merged_session_replaces_the_two_it_bridged(stack):
    client = bigquery_client(stack.project)
    rows = [
        _session("u1", 0, 0, 1, 1),        # closed on time ...
        _session("u1", 40, 40, 1, 1),      # ... a second session ...
        _session("u1", 0, 40, 1, 3),       # ... merged by a late event at 20
        _session("u1", 100, 100, 1, 1),    # a later session of u1, untouched
        _session("u2", 0, 5, 1, 2),        # u2: on time, then a late event in the same window
        _session("u2", 0, 5, 2, 3),
        _session("u3", 0, 0, 1, 1),
    ]
    rows.append(dict(rows[-1]))  # a retried insert the insertId did not catch
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.user_sessions", rows, retry=None)
    got = query(client, f"SELECT user_id, session_start, event_count, version "
                        f"FROM `{stack.project}.{DATASET}.user_sessions_current` ORDER BY user_id, session_start")
    assert [(r["user_id"], (r["session_start"] - BASE).total_seconds() / 60, r["event_count"], r["version"])
            for r in got] == [("u1", 0, 3, 1), ("u1", 100, 1, 1), ("u2", 0, 3, 2), ("u3", 0, 1, 1)]
