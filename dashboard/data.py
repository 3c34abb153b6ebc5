"""What the dashboard shows, read from BigQuery with the queries in
sql/dashboard/ (plain SQL an analyst can run as is), as plain Python values:
the page (dashboard/app.py) only draws them, and tests check them without a
browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from provision import substitute

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "dashboard"
TYPES = ("order", "inventory", "user_activity")


@dataclass
class Snapshot:
    minutes: list[datetime] = field(default_factory=list)   # the minutes shown, oldest first
    per_type: dict = field(default_factory=dict)             # type -> column -> [value per minute]
    totals: dict = field(default_factory=dict)               # column -> sum over the window, every type
    alerts: list[dict] = field(default_factory=list)
    sessions: dict = field(default_factory=dict)
    newest_minute: datetime | None = None
    incomplete: list[datetime] = field(default_factory=list)  # minutes a stopped job left with lost counts
    loaded_at: datetime | None = None


COUNTS = ("events", "unique_users", "duplicates", "conflicts", "dead_letters", "late", "far_late")
LAGS = ("lag_event_p50_ms", "lag_event_p99_ms", "lag_publish_p50_ms", "lag_publish_p99_ms")


def _query(client, name: str, project: str, dataset: str, minutes: int) -> list[dict]:
    from google.cloud import bigquery

    sql = substitute((SQL_DIR / name).read_text(), project, dataset)
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("minutes", "INT64", minutes)])
    return [dict(row.items()) for row in client.query(sql, job_config=config).result(timeout=60)]


def load(client, project: str, dataset: str, minutes: int = 30) -> Snapshot:
    rows = _query(client, "metrics.sql", project, dataset, minutes)
    snap = Snapshot(loaded_at=datetime.now(timezone.utc))
    snap.minutes = sorted({r["minute"] for r in rows})
    index = {m: i for i, m in enumerate(snap.minutes)}
    for event_type in sorted({r["event_type"] for r in rows} | set(TYPES)):
        snap.per_type[event_type] = {c: [0] * len(snap.minutes) for c in COUNTS}
        snap.per_type[event_type].update({c: [None] * len(snap.minutes) for c in LAGS})
    for r in rows:
        cols, i = snap.per_type[r["event_type"]], index[r["minute"]]
        for c in COUNTS:
            cols[c][i] = r[c] or 0
        for c in LAGS:
            cols[c][i] = r[c]
    snap.totals = {c: sum(sum(cols[c]) for cols in snap.per_type.values()) for c in COUNTS if c != "unique_users"}
    # Distinct users do not add up over minutes (nor over types: one id space):
    # the busiest minute's, per type.
    snap.totals["peak_users_per_minute"] = max(
        (max(cols["unique_users"], default=0) for cols in snap.per_type.values()), default=0)
    snap.newest_minute = snap.minutes[-1] if snap.minutes else None
    snap.incomplete = sorted({r["minute"] for r in rows if r.get("complete") is False})
    snap.alerts = _query(client, "alerts.sql", project, dataset, minutes)
    snap.totals["alerts"] = len(snap.alerts)
    sessions = _query(client, "sessions.sql", project, dataset, minutes)
    snap.sessions = sessions[0] if sessions else {}
    return snap
