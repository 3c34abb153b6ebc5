"""The dashboard page (Dash, plotly charts), refreshed every `--refresh_s`
seconds from the analytics tables (dashboard/data.py).

    python -m dashboard --project local-project --dataset ecommerce [--port 8050] [--minutes 30]

Locally, after `python -m localstack up && source .local/stack/env.sh`, it
reads the BigQuery emulator; without the emulator variables it reads real
BigQuery with Application Default Credentials. Dash serves its own
JavaScript from the installed package: the page needs no internet.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from common.cli import Parser, fail

_log = logging.getLogger(__name__)

COLORS = {"order": "#1f77b4", "inventory": "#2ca02c", "user_activity": "#ff7f0e", "unknown": "#7f7f7f"}
# KPI cards: (element id, label, key in Snapshot.totals)
CARDS = (("kpi-events", "Events", "events"), ("kpi-users", "Peak users / minute", "peak_users_per_minute"),
         ("kpi-duplicates", "Duplicates dropped", "duplicates"), ("kpi-conflicts", "Conflicts", "conflicts"),
         ("kpi-dead-letters", "Dead letters", "dead_letters"), ("kpi-late", "Late", "late"),
         ("kpi-far-late", "Far late", "far_late"), ("kpi-alerts", "Alerts", "alerts"))


def _bar_figure(snap, column: str, title: str, types=None):
    import plotly.graph_objects as go

    fig = go.Figure()
    for event_type, cols in snap.per_type.items():
        if types and event_type not in types:
            continue
        fig.add_trace(go.Bar(name=event_type, x=snap.minutes, y=cols[column],
                             marker_color=COLORS.get(event_type, "#9467bd")))
    fig.update_layout(title=title, barmode="stack", height=300, margin=dict(l=40, r=10, t=40, b=30),
                      legend=dict(orientation="h"))
    return fig


def _lag_figure(snap):
    import plotly.graph_objects as go

    fig = go.Figure()
    for event_type, cols in snap.per_type.items():
        if event_type == "unknown":
            continue
        for column, dash in (("lag_publish_p50_ms", "solid"), ("lag_publish_p99_ms", "dot")):
            fig.add_trace(go.Scatter(name=f"{event_type} {column[12:15]}", x=snap.minutes, y=cols[column],
                                     mode="lines+markers", line=dict(color=COLORS.get(event_type), dash=dash)))
    fig.update_layout(title="Publish -> ingest lag (ms, p50 solid, p99 dotted)", height=300,
                      margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h"))
    return fig


def _quality_figure(snap):
    import plotly.graph_objects as go

    fig = go.Figure()
    for column in ("duplicates", "conflicts", "dead_letters", "late", "far_late"):
        fig.add_trace(go.Bar(name=column, x=snap.minutes,
                             y=[sum(cols[column][i] for cols in snap.per_type.values())
                                for i in range(len(snap.minutes))]))
    fig.update_layout(title="Duplicates, conflicts, dead letters, late arrivals per minute", barmode="group",
                      height=300, margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h"))
    return fig


class Snapshots:
    """The newest Snapshot, refreshed every `refresh_s` by one background
    thread, so a page's refresh only reads it. Queried from the page's own
    refreshes instead, a BigQuery answer slower than the interval (the
    emulator on a busy laptop) was overtaken by the next refresh every time,
    and the page never drew anything."""

    def __init__(self, load, refresh_s: float):
        self.load, self.refresh_s = load, refresh_s
        self.snapshot, self.error, self.refreshes = None, None, 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-refresh", daemon=True)

    def start(self) -> "Snapshots":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                snapshot, error = self.load(), None
            except Exception as exc:  # noqa: BLE001 - the page says what failed and keeps its last numbers
                _log.warning("dashboard refresh failed: %s", exc)
                snapshot, error = None, f"refresh failed: {type(exc).__name__}: {exc}"[:300]
            with self._changed:
                if snapshot is not None:
                    self.snapshot = snapshot
                self.error = error
                self.refreshes += 1
                self._changed.notify_all()
            self._stop.wait(max(0.0, self.refresh_s - (time.monotonic() - started)))

    def latest(self, wait_s: float = 0.0, refreshes: int = 1):
        """(snapshot or None, error or None), once `refreshes` refreshes have
        ended or `wait_s` has passed."""
        with self._changed:
            self._changed.wait_for(lambda: self.refreshes >= refreshes, timeout=wait_s)
            return self.snapshot, self.error


def build_app(load, refresh_s: float = 5.0, title: str = "E-commerce stream"):
    """The Dash app; `load()` returns a dashboard.data.Snapshot (called by a
    background thread every `refresh_s`, see Snapshots)."""
    from dash import Dash, Input, Output, dcc, html

    snapshots = Snapshots(load, refresh_s).start()

    app = Dash(__name__, title=title, serve_locally=True)
    card_style = {"display": "inline-block", "padding": "8px 14px", "margin": "4px", "border": "1px solid #ddd",
                  "borderRadius": "6px", "minWidth": "120px", "fontFamily": "sans-serif"}
    app.layout = html.Div([
        html.H2(title, style={"fontFamily": "sans-serif"}),
        html.Div(id="status", style={"fontFamily": "sans-serif", "color": "#555"}),
        html.Div([html.Div([html.Div(label, style={"fontSize": "12px", "color": "#666"}),
                            html.Div("-", id=card_id, style={"fontSize": "22px"})], style=card_style)
                  for card_id, label, _ in CARDS]),
        dcc.Graph(id="events-chart"), dcc.Graph(id="users-chart"), dcc.Graph(id="lag-chart"),
        dcc.Graph(id="quality-chart"),
        html.H4("Sessions (30 minutes of inactivity end one)", style={"fontFamily": "sans-serif"}),
        html.Div(id="sessions", style={"fontFamily": "sans-serif"}),
        html.H4("Alerts (more than the threshold of events from one user in one minute)",
                style={"fontFamily": "sans-serif"}),
        html.Table(id="alerts-table", style={"fontFamily": "monospace", "fontSize": "12px"}),
        dcc.Interval(id="refresh", interval=int(refresh_s * 1000), n_intervals=0),
    ])
    outputs = ([Output("status", "children"), Output("events-chart", "figure"), Output("users-chart", "figure"),
                Output("lag-chart", "figure"), Output("quality-chart", "figure"), Output("sessions", "children"),
                Output("alerts-table", "children")] + [Output(card_id, "children") for card_id, _, _ in CARDS])

    @app.callback(outputs, Input("refresh", "n_intervals"))
    def refresh(_n):
        from dash import no_update

        snap, error = snapshots.latest(wait_s=min(refresh_s, 10.0))
        if snap is None:
            return [error or "loading ..."] + [no_update] * (len(outputs) - 1)
        status = (f"newest minute {snap.newest_minute:%Y-%m-%d %H:%M} UTC, {len(snap.minutes)} minutes shown"
                  if snap.newest_minute else "no metrics yet")
        if error:  # the last refresh failed: these are the numbers before it
            status = f"{error} (showing the numbers of {snap.loaded_at:%H:%M:%S} UTC)"
        if snap.incomplete:
            status += (f"; {len(snap.incomplete)} minute(s) incomplete: a job stopped while they were open "
                       f"({', '.join(f'{m:%H:%M}' for m in snap.incomplete[:5])})")
        s = snap.sessions or {}
        sessions = (f"{s.get('sessions') or 0} sessions started in the window and closed so far, "
                    f"{s.get('converted') or 0} converted (add to cart, then an order), "
                    f"{s.get('avg_events') or 0:.1f} events and {(s.get('avg_duration_s') or 0) / 60:.1f} minutes "
                    "on average")
        header = html.Tr([html.Th(h) for h in ("minute", "user", "events", "threshold", "detected at")])
        body = [html.Tr([html.Td(f"{a['minute']:%H:%M}"), html.Td(a["user_id"]), html.Td(a["event_count"]),
                         html.Td(a["threshold"]), html.Td(f"{a['detected_at']:%H:%M:%S}")]) for a in snap.alerts]
        return ([status, _bar_figure(snap, "events", "Events per minute (event time), by type"),
                 _bar_figure(snap, "unique_users", "Unique users per minute", types=("order", "user_activity")),
                 _lag_figure(snap), _quality_figure(snap), sessions, [header, *body]]
                + [f"{snap.totals.get(key, 0):,}" for _, _, key in CARDS])

    return app


def build_parser() -> Parser:
    parser = Parser("python -m dashboard", __doc__)
    parser.add_argument("--project", required=True, help="project of the BigQuery dataset")
    parser.add_argument("--dataset", default="ecommerce", help="dataset holding the tables (default ecommerce)")
    parser.add_argument("--minutes", type=int, default=30, help="minutes of event time shown (default 30)")
    parser.add_argument("--refresh_s", type=float, default=5.0, help="seconds between refreshes (default 5)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if not 1 <= args.minutes <= 24 * 60:
        return fail("--minutes must be between 1 and 1440")
    if not 1 <= args.refresh_s <= 3600:
        return fail("--refresh_s must be between 1 and 3600")
    os.environ.setdefault("NO_GCE_CHECK", "True")
    from common.clients import SetupError, bigquery_client, check_services

    try:
        check_services(("bigquery",))
        client = bigquery_client(args.project)
        client.get_table(f"{args.project}.{args.dataset}.metrics_per_minute", timeout=5, retry=None)
    except SetupError as err:
        return fail(str(err))
    except Exception as exc:  # noqa: BLE001 - a missing table or dataset, said in one line
        return fail(f"cannot read {args.project}.{args.dataset}.metrics_per_minute ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); provision the dataset first (python -m provision)")

    from dashboard.data import load

    app = build_app(lambda: load(client, args.project, args.dataset, args.minutes), args.refresh_s)
    print(f"dashboard: http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
