"""python -m bench: the job against its own limits, like with like, one command.

  1. on one core, per event, start-up excluded (bench/like.py):
     (a) the job's own per-event work in plain Python (the physical reference),
     (b) Beam's floor: a graph of the job's shape with empty step bodies,
     (c) the job's real graph (the launchers' build_pipeline, BigQuery branch
         into an in-memory sink, files into a local folder),
     each on the FnApiRunner (Dataflow's SDK harness), one worker, state cache
     off as on Dataflow; medians of interleaved rounds; (c) / (b) and
     (c) / ((a) + (b)); (b) and (c) again with --analytics=off, to price the
     analytics steps;
  2. peak memory of the real graph at growing volumes;
  3. a steady local run (bench/steady.py): the job on the emulators at a fixed
     rate for minutes, p99 publish -> BigQuery per 30-s slice, and the BigQuery
     emulator's own insertAll ceiling measured alone in the same run;
  4. anomaly alerts: detection latency (crossing event published -> alert
     published) at 100 events/s of background load with bot bursts;
  5. the backfill's batch graph on the same core and messages, beside (c)
     (part of 1: `backfill` in its table).

Writes bench/results/<timestamp>.json and .png and prints a table.
    python -m bench                          # everything (about 20 minutes on 2 cores)
    python -m bench --quick                  # smaller sizes, 1-minute steady run
    python -m bench --steady-rate 200 --steady-minutes 10
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

_NO_CACHE = ("from apache_beam.runners.portability.fn_api_runner import worker_handlers;"
             "worker_handlers.STATE_CACHE_SIZE_MB = 0;")


def _run_core(args: list[str], cache: bool = False) -> str:
    code = ("" if cache else _NO_CACHE) + f"import sys; from bench.core import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _graph(n: int, cache: bool = False) -> dict:
    """Generate n messages in one process, run the graph over them in another
    (so the graph's peak RSS is its own)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/messages.jsonl"
        _run_core(["generate", str(n), path])
        return json.loads(_run_core(["graph", path], cache=cache).strip().splitlines()[-1])


def machine() -> dict:
    import apache_beam

    return {"python": platform.python_version(), "beam": apache_beam.__version__, "cpu": platform.processor() or
            platform.machine(), "cores": __import__("os").cpu_count(),
            "memory_gb": round(__import__("os").sysconf("SC_PAGE_SIZE") * __import__("os").sysconf("SC_PHYS_PAGES") / 2**30)}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    like = results.get("like")
    ax = axes[0]
    if like is None:
        ax.text(0.5, 0.5, "like with like: not measured in this run (--skip-like)", ha="center", va="center")
        ax.set_axis_off()
    labels = ["(a) job's work,\nplain Python", "(b) Beam floor,\njob's shape", "(c) job's graph"]
    if like is not None:
        values = [like[k]["events_per_s"] for k in ("work", "floor", "graph")]
        bars = ax.bar(labels, values, color=["#4c72b0", "#55a868", "#dd8452"])
        ax.axhline(10000, color="red", linestyle="--", linewidth=1, label="target 10,000/s per core")
        for bar, v in zip(bars, values):
            ax.annotate(f"{v:,}/s", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=9)
        ax.set_title("Events/s on one core (marginal, start-up excluded)")
        ax.legend(fontsize=8)
    ax = axes[1]
    steady = results.get("steady")
    if steady:
        seen = [s for s in steady["slices"] if s["p99_s"] is not None]
        xs = [s["from_s"] / 60 for s in seen]
        ax.plot(xs, [s["p99_s"] for s in seen], marker="o", label="p99 per 30-s slice")
        ax.plot(xs, [s["p50_s"] for s in seen], marker=".", label="p50")
        for s in steady["slices"]:
            if s["p99_s"] is None:
                ax.axvspan(s["from_s"] / 60, s["from_s"] / 60 + 0.5, color="red", alpha=0.15)
        ax.axhline(2, color="red", linestyle="--", linewidth=1, label="goal p99 2 s")
        ax.set_xlabel("minutes into the run")
        ax.set_ylabel("publish -> visible in BigQuery (s)")
        ax.legend(fontsize=8)
        ax.set_title(f"Steady local run at {steady['rate']:.0f}/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _like(kind: str, small: int, large: int) -> dict:
    """One measurement in its own process (python -m bench.like)."""
    out = subprocess.run([sys.executable, "-m", "bench.like", kind, str(small), str(large)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def like_with_like(small: int, large: int, rounds: int, progress) -> dict:
    """Medians of `rounds` interleaved rounds of (a), (b), (c)."""
    import statistics

    runs: dict[str, list] = {"work": [], "floor": [], "graph": [], "floor_off": [], "graph_off": [], "backfill": []}
    for r in range(rounds):
        for kind in runs:
            progress(f"round {r + 1}/{rounds}: {kind}")
            runs[kind].append(_like(kind, small, large))
    out = {kind: {"us_per_event": round(statistics.median(m["us_per_event"] for m in ms), 1),
                  "rounds_us": [m["us_per_event"] for m in ms]} for kind, ms in runs.items()}
    for kind in out:
        out[kind]["events_per_s"] = round(1e6 / out[kind]["us_per_event"])
    out["graph_over_floor"] = round(out["graph"]["us_per_event"] / out["floor"]["us_per_event"], 2)
    out["graph_over_floor_plus_work"] = round(
        out["graph"]["us_per_event"] / (out["floor"]["us_per_event"] + out["work"]["us_per_event"]), 2)
    out["analytics_cost"] = round(out["graph"]["us_per_event"] / out["graph_off"]["us_per_event"], 2)
    out["sizes"] = [small, large]
    return out


def main(argv=None) -> int:
    from rich.progress import Progress

    from common.cli import Parser

    parser = Parser("python -m bench", __doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round, a 1-minute steady run")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-steady", action="store_true", help="only the in-process benchmarks, no emulator stack")
    skip.add_argument("--skip-like", action="store_true",
                      help="only the runs on the emulator stack (steady run, alert latency): about 15 minutes")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of (a), (b), (c) (default 3)")
    parser.add_argument("--steady-rate", type=float, default=200.0,
                        help="events/s of the steady local run (default 200: the documented local rate)")
    parser.add_argument("--steady-minutes", type=float, default=None, help="length of the steady run (default 10)")
    args = parser.parse_args(argv)
    small, large = (2_000, 10_000) if args.quick else (10_000, 50_000)
    rounds = args.rounds or (1 if args.quick else 3)
    minutes = args.steady_minutes or (1 if args.quick else 10)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    console = Console(force_terminal=False, width=150)
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    if not args.skip_like:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("1. like with like", total=None)
            say = lambda text: bar.update(task, description=f"1. like with like: {text}")  # noqa: E731
            results["like"] = like_with_like(small, large, rounds, say)
            bar.update(task, description="2. memory of the real graph")
            results["graph"] = [_graph(n) for n in sizes]
    if not args.skip_steady:
        console.print(f"3. steady local run: {args.steady_rate:.0f} events/s for {minutes:g} minutes")
        from bench.steady import run as steady

        results["steady"] = steady(args.steady_rate, minutes, progress=console.print)
        console.print("4. anomaly alerts: detection latency at 100 events/s with bot bursts")
        from bench.steady import alert_latency

        results["alerts"] = alert_latency(100.0, 1 if args.quick else 2, progress=console.print)

    if "like" in results:
        like = results["like"]
        table = Table(title=f"Per event on one core (FnApiRunner, 1 worker, state cache off; median of {rounds}, "
                            f"marginal cost between {small:,} and {large:,} events)")
        for column in ("measurement", "µs/event", "events/s", "vs floor"):
            table.add_column(column, justify="left" if column == "measurement" else "right")
        names = {"work": "(a) the job's per-event work in plain Python",
                 "floor": "(b) Beam's floor: the job's shape, empty bodies",
                 "graph": "(c) the job's graph (BigQuery branch in memory, files to disk)",
                 "floor_off": "(b) without the analytics steps (--analytics=off)",
                 "graph_off": "(c) without the analytics steps (--analytics=off)",
                 "backfill": "the backfill's batch graph (history files -> rows, minute files)"}
        for kind, name in names.items():
            if kind not in like:
                continue
            m = like[kind]
            floor = like["floor_off" if kind.endswith("_off") else "floor"]["us_per_event"]
            table.add_row(name, f"{m['us_per_event']:.1f}", f"{m['events_per_s']:,}",
                          "" if kind == "backfill" else f"{m['us_per_event'] / floor:.2f}x")
        table.add_row("(c) / ((a) + (b))", "", "", f"{like['graph_over_floor_plus_work']:.2f}x")
        table.add_row("(c) analytics on / off", "", "", f"{like['analytics_cost']:.2f}x")
        for g in results["graph"]:
            table.add_row(f"real graph, {g['events']:,} events: peak RSS {g['peak_rss_mb']} MB", "", "", "")
        console.print(table)
    if "steady" in results:
        st = results["steady"]
        t2 = Table(title=f"Steady local run: {st['rate']:.0f} events/s for {st['minutes']:g} min "
                         f"(achieved {st['achieved_rate']}/s, {st['published']:,} events, missing {st['missing']}); "
                         f"BigQuery emulator alone: {st['emulator_ceiling']['rows_per_s']:,} rows/s")
        for column in ("slice from (s)", "events", "p50 s", "p99 s", "max s"):
            t2.add_column(column, justify="right")
        for sl in st["slices"]:
            if sl["p99_s"] is None:
                t2.add_row(str(int(sl["from_s"])), str(sl["events"]), f"{sl['missing']} not seen", "-", "-")
            else:
                t2.add_row(str(int(sl["from_s"])), str(sl["events"]), f"{sl['p50_s']}", f"{sl['p99_s']}",
                           f"{sl['max_s']}")
        console.print(t2)
        console.print("cores used during the run: " + ", ".join(f"{k} {v}" for k, v in st["cores_used"].items()))
        console.print(f"worst slice p99: {st['worst_slice_p99_s']} s (visibility polled every "
                      f"{st['instrument']['poll_s']} s; the poller's reads took "
                      f"{st['instrument']['query_share_of_run'] * 100:.1f}% of the run; rows its cursor "
                      f"missed: {st['instrument']['cursor_misses']})")
        console.print(f"the rate is {st['rate'] / st['emulator_ceiling']['rows_per_s'] * 100:.0f}% of the BigQuery "
                      f"emulator's insertAll ceiling")
    if "alerts" in results:
        al = results["alerts"]
        console.print(f"anomaly alerts at {al['rate']:.0f} events/s: {al['alerts']} of {al['expected_alerts']} expected "
                      f"({al['bursts']} bot bursts); crossing event published -> alert published: p50 {al['p50_s']} s, "
                      f"p99 {al['p99_s']} s, max {al['max_s']} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2))
    png_path = RESULTS / f"{stamp}.png"
    chart(results, png_path)
    console.print(f"results: {json_path}\nchart: {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
