"""The reconciliation report: a table on the terminal, JSON, and a picture."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_results(outcome: dict, console: Console | None = None) -> bool:
    console = console or Console(width=160)
    if "ledger_events" in outcome:
        console.print(f"ledger: {outcome['ledger_events']} events, {outcome['ledger_malformed']} malformed, "
                      f"{outcome['ledger_duplicated']} published more than once, {outcome['ledger_late']} late, "
                      f"{outcome['ledger_far_late']} beyond the allowed lateness, {outcome['ledger_conflicts']} "
                      "conflicting copies")
    else:
        console.print(f"no ledger: BigQuery, the job's files_written and the files compared ({outcome['mode']})")
    summary = Table(title="Reconciliation", show_lines=False)
    summary.add_column("check")
    summary.add_column("result")
    summary.add_column("failures", justify="right")
    for result in outcome["results"]:
        summary.add_row(result.title, "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]",
                        str(result.failures))
        if result.name not in ("per_minute", "nl_per_minute") or not result.passed:
            _detail(console, result, only_failures=result.name in ("per_minute", "nl_per_minute"))
    console.print(summary)
    return all(r.passed for r in outcome["results"])


def _detail(console: Console, result, only_failures: bool = False) -> None:
    rows = [r for r in result.rows if r.get("failures")] if only_failures else result.rows
    if not rows:
        return
    table = Table(title=result.title, title_justify="left")
    columns = list(rows[0])
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(row.get(c)) if row.get(c) not in (None, []) else "" for c in columns])
    console.print(table)
    for note in result.notes:
        console.print(f"  {note}")


def write_json(outcome: dict, path: Path, scope: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "scope": scope,
        "passed": all(r.passed for r in outcome["results"]),
        "ledger": {k: v for k, v in outcome.items() if k.startswith("ledger_")},
        "checks": [{"name": r.name, "title": r.title, "passed": r.passed, "failures": r.failures, "rows": r.rows,
                    "notes": r.notes} for r in outcome["results"]],
    }
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def write_png(outcome: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    per_minute = next(r for r in outcome["results"] if r.name == "per_minute").rows
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))

    # Per-minute counts, all types together: producer vs BigQuery vs GCS.
    totals = defaultdict(lambda: [0, 0, 0])
    for row in per_minute:
        t = totals[row["minute"][11:16]]
        t[0] += row["producer_count"]
        t[1] += row["bigquery_count"]
        t[2] += row.get("gcs_count", 0)
    minutes = sorted(totals)
    x = range(len(minutes))
    width = 0.27
    ax = axes[0]
    ax.bar([i - width for i in x], [totals[m][0] for m in minutes], width, label="producer (ledger)")
    ax.bar(list(x), [totals[m][1] for m in minutes], width, label="BigQuery (dedup)")
    ax.bar([i + width for i in x], [totals[m][2] for m in minutes], width, label="GCS files")
    ax.set_xticks(list(x))
    ax.set_xticklabels(minutes, rotation=45, fontsize=8)
    ax.set_title("Events per event-time minute (UTC)")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)

    # Lag from event time to ingest, on-time vs delayed on purpose.
    ax = axes[1]
    on_time = [r["lag_s"] for r in outcome["lag"] if not r["delayed"]]
    delayed = [r["lag_s"] for r in outcome["lag"] if r["delayed"]]
    # Lags span milliseconds (on time) to minutes (held back): log bins.
    import numpy as np

    every = [v for v in on_time + delayed if v > 0]
    bins = np.logspace(np.log10(max(min(every, default=0.01), 0.001)), np.log10(max(every, default=1) * 1.1), 40)
    if on_time:
        ax.hist([max(v, 0.001) for v in on_time], bins=bins, alpha=0.7, label=f"on time (n={len(on_time)})")
    if delayed:
        ax.hist([max(v, 0.001) for v in delayed], bins=bins, alpha=0.7, label=f"delayed by producer (n={len(delayed)})")
    ax.set_xscale("log")
    if on_time:
        p50, p99 = np.percentile(on_time, [50, 99])
        ax.set_title(f"Lag: ingest - event time (on time p50 {p50:.2f}s, p99 {p99:.2f}s)")
    else:
        ax.set_title("Lag: ingest time - event time")
    ax.set_xlabel("seconds")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)

    # What the faults became.
    ax = axes[2]
    dup = next((r for r in outcome["results"] if r.name == "duplicates"), None)
    absorbed = sum(int(r.get("published_more_than_once") or 0) for r in dup.rows) if dup else 0
    raw_extra = sum(int(r.get("raw_extra_rows") or 0) for r in dup.rows) if dup else 0
    mal = next((r for r in outcome["results"] if r.name == "malformed"), None)
    dead = sum(int(r.get("dead_lettered") or 0) for r in mal.rows) if mal else 0
    labels = ["duplicates\npublished", "duplicates\nin raw tables", "late\npublished", "beyond\nlateness",
              "malformed\npublished", "dead-\nlettered"]
    values = [outcome["ledger_duplicated"], raw_extra, outcome["ledger_late"], outcome["ledger_far_late"],
              outcome["ledger_malformed"], dead]
    bars = ax.bar(labels, values, color=["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#c44e52", "#937860"])
    for bar, value in zip(bars, values):
        ax.annotate(str(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set_title(f"Faults and where they went (absorbed duplicates: {absorbed})")
    ax.tick_params(axis="x", labelsize=8)
    passed = all(r.passed for r in outcome["results"])
    fig.suptitle(f"Reconciliation {'PASSED' if passed else 'FAILED'}: {outcome['ledger_events']} events",
                 color="green" if passed else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
