"""python -m bench: measure the pipeline against the physical limit, one command.

  1. reference: plain Python (orjson parse, set dedup, per-minute counts) on
     one core, and the same loop with the job's own validation;
  2. the job's core graph on the FnApiRunner (Dataflow's SDK harness), one
     worker = one core, at 10k / 100k / 1M events, with peak memory;
  3. end to end on the local stack: a rate ladder, highest sustained rate with
     nothing lost, p50/p99 publish -> BigQuery and -> file latency.

Writes bench/results/<timestamp>.json and .png and prints a table.
    python -m bench               # everything (about 15 minutes on 2 cores)
    python -m bench --quick       # smaller sizes, short ladder
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


def _reference(n: int) -> dict:
    return json.loads(_run_core(["reference", str(n)]).strip().splitlines()[-1])


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

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ref = results["reference"]
    graph = results["graph"]
    ax = axes[0]
    labels = ["plain Python\n(orjson+set)", "with job's\nvalidation"] + [f"Beam graph\n{g['events'] // 1000}k" for g in graph]
    values = [ref["plain_events_per_s"], ref["validated_events_per_s"]] + [g["events_per_s"] for g in graph]
    bars = ax.bar(labels, values, color=["#4c72b0", "#55a868"] + ["#dd8452"] * len(graph))
    ax.set_yscale("log")
    ax.axhline(10000, color="red", linestyle="--", linewidth=1, label="target 10k/s per core")
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:,}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax.set_title("Events/s on one core")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax = axes[1]
    ax.plot([g["events"] for g in graph], [g["peak_rss_mb"] for g in graph], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_title("Core graph memory vs volume")
    ax = axes[2]
    ladder = results.get("e2e", {}).get("ladder", [])
    if ladder:
        rates = [r["rate"] for r in ladder]
        ax.plot(rates, [r["bigquery_latency_s"]["p50"] or 0 for r in ladder], marker="o", label="BigQuery p50")
        ax.plot(rates, [r["bigquery_latency_s"]["p99"] or 0 for r in ladder], marker="o", label="BigQuery p99")
        ax.plot(rates, [r["file_latency_s"]["p50"] or 0 for r in ladder], marker="s", label="file p50")
        for r in ladder:
            if not r["sustained"]:
                ax.annotate("loss/backlog", (r["rate"], r["bigquery_latency_s"]["p99"] or 0), color="red")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(5, color="red", linestyle="--", linewidth=1, label="target p99 5 s")
        ax.set_xlabel("simulator rate (events/s)")
        ax.set_ylabel("latency from publish (s)")
        ax.legend(fontsize=8)
    ax.set_title("End to end on the local stack")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    from common.cli import Parser

    parser = Parser("python -m bench", __doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events and rates (a smoke run of the benchmarks)")
    parser.add_argument("--skip-e2e", action="store_true", help="only the in-process benchmarks, no emulator stack")
    parser.add_argument("--rates", default=None, help="comma-separated e2e ladder (default 100,200,400,700,1000,1400)")
    args = parser.parse_args(argv)
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    rates = [float(r) for r in (args.rates or ("50,200" if args.quick else "100,200,400,700,1000,1400")).split(",")]
    console = Console(force_terminal=False, width=150)
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    console.print("1. reference (plain Python, one core)")
    results["reference"] = _reference(sizes[-1] if not args.quick else 10_000)
    console.print("2. core graph on the FnApiRunner (one worker)")
    results["graph_default_state_cache"] = _graph(sizes[0], cache=True)
    results["graph"] = [_graph(n) for n in sizes]
    if not args.skip_e2e:
        console.print("3. end to end on the local stack")
        from bench.e2e import run

        results["e2e"] = run(rates, seconds=10 if args.quick else 20)

    table = Table(title="Benchmark")
    table.add_column("measurement")
    table.add_column("events", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("peak RSS MB", justify="right")
    ref = results["reference"]
    table.add_row("plain Python: orjson + set dedup + per-minute count", f"{ref['events']:,}", f"{ref['plain_events_per_s']:,}", "")
    table.add_row("plain Python with the job's validation (fastavro + rules)", f"{ref['events']:,}",
                  f"{ref['validated_events_per_s']:,}", "")
    g0 = results["graph_default_state_cache"]
    table.add_row("Beam core graph, FnApiRunner, default 100 MB state cache", f"{g0['events']:,}",
                  f"{g0['events_per_s']:,}", str(g0["peak_rss_mb"]))
    for g in results["graph"]:
        table.add_row("Beam core graph, FnApiRunner, state cache off", f"{g['events']:,}", f"{g['events_per_s']:,}",
                      str(g["peak_rss_mb"]))
    for r in results.get("e2e", {}).get("ladder", []):
        table.add_row(f"e2e local @ {r['rate']:.0f}/s: BigQuery p50/p99 {r['bigquery_latency_s']['p50']}/"
                      f"{r['bigquery_latency_s']['p99']} s, files p50 {r['file_latency_s']['p50']} s, "
                      f"missing {r['missing_in_bigquery']}", f"{r['published']:,}", f"{r['achieved_publish_rate']:,}", "")
    console.print(table)
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
