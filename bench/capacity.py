"""python -m bench.capacity: workers, volumes and monthly cost at a peak rate,
from the latest benchmark (docs/bench/*.json, or --bench) and list prices
(docs/prices.json: their date and region are printed with the figures).

    python -m bench.capacity                         # 1M and 10M events/minute
    python -m bench.capacity --per-minute 2500000 --event-bytes 600 --json

What is measured and what is assumed is said in the output: the events/s per
core is the job's graph on the FnApiRunner (bench/like.py, (c)); event sizes
are the mean file line of a demo run (the command is in docs/system-design.md);
the rest (utilisation target, hours at peak, retention) are the assumptions
named by the options. Not counted: the queries (the nightly warehouse, the
analysts), Nearline and Coldline retrievals, GCS operations (a few million
a month, a few dollars), the analytics steps' small shuffles. Steady-state
storage assumes partitions expire and a lifecycle rule deletes files after
--kept-days; neither is set by provisioning (docs/system-design.md, 5). Every number docs/system-design.md quotes in its
capacity section comes from this output (tests/test_docs.py).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from common.cli import Parser

ROOT = Path(__file__).resolve().parent.parent
DAYS = 30
GB, GIB, TIB = 1e9, 2 ** 30, 2 ** 40  # BigQuery and Cloud Storage bill per GiB ("GB" on their pages), Pub/Sub per TiB


def latest_bench() -> Path:
    runs = sorted((ROOT / "docs" / "bench").glob("*.json"))
    if not runs:
        raise FileNotFoundError("no benchmark in docs/bench/: run python -m bench and copy its JSON there")
    return runs[-1]


def plan(per_minute: float, bench: dict, prices: dict, event_bytes: int, utilisation: float,
         peak_hours: float, active_days: int, kept_days: int) -> dict:
    """One scenario. Volumes assume the peak rate for `peak_hours` a day and a
    third of it the rest of the day."""
    per_s = per_minute / 60
    core_rate = bench["like"]["graph"]["events_per_s"]
    busy = per_s / core_rate
    vcpus = busy / utilisation
    workers = math.ceil(vcpus / prices["n2_standard_2_vcpus"])
    events_day = per_minute * 60 * (peak_hours + (24 - peak_hours) / 3)
    month = events_day * DAYS
    data_gb = month * event_bytes / GB
    data_gib = month * event_bytes / GIB
    worker_hours = workers * 24 * DAYS * (peak_hours + (24 - peak_hours) / 3) / 24  # autoscaling follows the load
    dataflow = worker_hours * (prices["n2_standard_2_vcpus"] * prices["dataflow_streaming_vcpu_hour"]
                               + prices["n2_standard_2_gb"] * prices["dataflow_streaming_gb_hour"])
    # The dedup's and the files' shuffles carry whole events; the analytics' shuffles carry small keyed tuples
    # (not counted).
    shuffle = 2 * data_gb * prices["dataflow_streaming_engine_gb"]
    pubsub = 2 * data_gb * GB / TIB * prices["pubsub_tib"]          # publish and subscribe
    pubsub += events_day * event_bytes / 2 ** 30 * prices["pubsub_retained_gib_month"]  # 1 day of acked messages
    insertall = month * max(event_bytes, prices["bigquery_insertall_min_row_bytes"]) / GIB \
        * prices["bigquery_insertall_gb"]
    write_api = max(0.0, data_gib - prices["bigquery_storage_write_free_tib_month"] * TIB / GIB) \
        * prices["bigquery_storage_write_gb"]
    active_months = active_days / DAYS
    long_months = max(0, kept_days - active_days) / DAYS
    bq_storage = data_gib * (active_months * prices["bigquery_active_gb_month"]
                            + long_months * prices["bigquery_long_term_gb_month"])
    gcs = data_gib * (1 * prices["gcs_standard_gb_month"] + 2 * prices["gcs_nearline_gb_month"]
                     + max(0, kept_days / DAYS - 3) * prices["gcs_coldline_gb_month"])
    total = dataflow + shuffle + pubsub + insertall + bq_storage + gcs
    return {
        "per_minute": per_minute, "per_second": round(per_s), "core_events_per_s": core_rate,
        "busy_vcpus": round(busy, 1), "vcpus_at_target": round(vcpus, 1), "workers_n2_standard_2": workers,
        "events_per_day_millions": round(events_day / 1e6), "data_tb_per_month": round(data_gb / 1000, 1),
        "monthly_usd": {
            "dataflow_workers": round(dataflow), "streaming_engine_shuffle": round(shuffle), "pubsub": round(pubsub),
            "bigquery_insertall": round(insertall), "bigquery_storage_write_api_instead": round(write_api),
            "bigquery_storage_steady_state": round(bq_storage), "gcs_files_steady_state": round(gcs),
            "total_with_insertall": round(total), "total_with_storage_write_api": round(total - insertall + write_api),
        },
    }


def main(argv=None) -> int:
    p = Parser("python -m bench.capacity", __doc__)
    p.add_argument("--per-minute", type=float, action="append", help="peak events per minute (repeatable; "
                   "default 1,000,000 and 10,000,000)")
    p.add_argument("--bench", type=Path, default=None, help="a benchmark JSON (default: the newest in docs/bench/)")
    p.add_argument("--prices", type=Path, default=ROOT / "docs" / "prices.json", help="list prices (docs/prices.json)")
    p.add_argument("--event-bytes", type=int, default=600, help="bytes per event stored (default 600: measured)")
    p.add_argument("--utilisation", type=float, default=0.5, help="target CPU use of a worker (default 0.5)")
    p.add_argument("--peak-hours", type=float, default=4, help="hours a day at peak; the rest at a third (default 4)")
    p.add_argument("--active-days", type=int, default=90, help="days a partition is queried or changed (default 90)")
    p.add_argument("--kept-days", type=int, default=400, help="partition expiry in BigQuery and on GCS (default 400)")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    bench_path = args.bench or latest_bench()
    bench, prices = json.loads(bench_path.read_text()), json.loads(args.prices.read_text())
    scenarios = [plan(rate, bench, prices, args.event_bytes, args.utilisation, args.peak_hours, args.active_days,
                      args.kept_days) for rate in (args.per_minute or [1_000_000, 10_000_000])]
    out = {"bench": str(bench_path.relative_to(ROOT)) if bench_path.is_relative_to(ROOT) else str(bench_path),
           "prices_as_of": prices["as_of"], "region": prices["region"], "scenarios": scenarios}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"benchmark {out['bench']}; prices {prices['region']}, {prices['as_of']}")
    for s in scenarios:
        print(f"\n{s['per_minute']:,.0f} events/minute ({s['per_second']:,}/s) at peak")
        print(f"  graph {s['core_events_per_s']:,} events/s per core (measured) -> {s['busy_vcpus']} vCPUs busy, "
              f"{s['vcpus_at_target']} at {args.utilisation:.0%} -> {s['workers_n2_standard_2']} x n2-standard-2")
        print(f"  {s['events_per_day_millions']:,} M events/day, {s['data_tb_per_month']:,} TB/month at "
              f"{args.event_bytes} B/event")
        for name, usd in s["monthly_usd"].items():
            print(f"  {name:<36} ${usd:>10,}/month")
    return 0


if __name__ == "__main__":
    sys.exit(main())
