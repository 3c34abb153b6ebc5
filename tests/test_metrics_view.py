"""The view metrics_per_minute_current on the BigQuery emulator: the last
version of each generation counts, generations add up, distinct users are
flagged inexact when they come from two generations, dead-letter reasons are
summed, the lag percentiles are those of the largest generation."""

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


def _row(minute, event_type, generation, version, events, users=None, final=False, reasons=(), lag=100, **more):
    row = {"metrics_id": f"{event_type}-{minute:%H%M}-{generation}-{version}", "minute": format_timestamp(minute),
           "event_type": event_type, "generation": generation, "version": version, "is_final": final,
           "events": events, "unique_users": users, "duplicates": more.get("duplicates", 0),
           "conflicts": more.get("conflicts", 0), "dead_letters": sum(n for _, n in reasons),
           "dead_letter_reasons": [{"reason": r, "count": n} for r, n in reasons],
           "late": more.get("late", 0), "far_late": more.get("far_late", 0),
           "emitted_at": format_timestamp(BASE + timedelta(minutes=5, seconds=version))}
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
    m0, m1 = BASE, BASE + timedelta(minutes=1)
    rows = [
        # minute 0, user_activity: generation g1 versions 1..3 (the last counts), then a far-late g2
        _row(m0, "user_activity", "g1", 1, 5, users=2, duplicates=1),
        _row(m0, "user_activity", "g1", 3, 9, users=3, duplicates=2, late=2, final=True, lag=200),
        _row(m0, "user_activity", "g1", 2, 7, users=3, duplicates=2, late=1),
        _row(m0, "user_activity", "g2", 1, 2, users=1, far_late=2, final=True, lag=9000),
        # minute 0, unknown: dead letters in two generations
        _row(m0, "unknown", "g3", 1, 0, reasons=[("invalid_json", 2), ("unknown_event_type", 1)], final=True),
        _row(m0, "unknown", "g4", 1, 0, reasons=[("invalid_json", 1)]),
        # minute 1, inventory: one generation, not final yet
        _row(m1, "inventory", "g5", 1, 4, conflicts=1),
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


def test_dead_letter_reasons_add_up(view):
    unknown = view[(BASE, "unknown")]
    assert unknown["dead_letters"] == 4
    assert [(r["reason"], r["count"]) for r in unknown["dead_letter_reasons"]] == [
        ("invalid_json", 3), ("unknown_event_type", 1)]
    assert len(view) == 3
