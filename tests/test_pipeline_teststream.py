"""The job's graph on TestStream (BundleBasedDirectRunner): event time,
dedup, dead letters, on-time and late panes, too-late events, file names."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import apache_beam as beam
import orjson
import pytest

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipeline.job import build_pipeline
from pipeline.options import EcommerceOptions
from tests.helpers import BASE, activity, inventory, order

W_END = BASE + timedelta(minutes=1)  # window [13:09, 13:10)
CLOCK = (W_END + timedelta(seconds=10)).timestamp()  # "now" for lateness routing


def msg(event_type, payload, event_id, t):
    data = orjson.dumps(payload) if not isinstance(payload, bytes) else payload
    attrs = {"event_type": event_type}
    if event_id:
        attrs["event_id"] = event_id
    return TimestampedValue((data, attrs), t.timestamp())


def ts(t: datetime) -> float:
    return t.timestamp()


@pytest.fixture
def outdir(tmp_path):
    return str(tmp_path / "output")


def run_stream(stream, outdir, extra=(), checks=None):
    """Run the job's graph on `stream`; `checks(outputs)` adds assert_that steps."""
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={outdir}",
                               "--max_event_age_days=0", "--late_firing_delay_s=0", "--allowed_lateness_s=180",
                               *extra])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), messages=p | stream,
                             clock=lambda: CLOCK, write_bigquery=False)
        if checks:
            checks(out)


def files_under(outdir):
    found = {}
    for root, _, names in os.walk(outdir):
        for n in names:
            path = os.path.join(root, n)
            found[os.path.relpath(path, outdir)] = [orjson.loads(line) for line in open(path, "rb").read().splitlines()]
    return found


def test_on_time_late_duplicate_too_late_and_malformed(outdir):
    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg("order", order(t(10), status="pending"), "o-1", t(10)),
                             msg("inventory", inventory(t(20)), "i-1", t(20)),
                             msg("inventory", inventory(t(20)), "i-1", t(20)),          # duplicate, same pane
                             msg("order", b"{not json", "bad-1", t(21)),                  # malformed
                             msg("refund", order(t(22)), "bad-2", t(22))])                # unknown type
              .advance_watermark_to(ts(W_END + timedelta(seconds=5)))                     # on-time panes fire
              .add_elements([msg("order", order(t(30), status="processing"), "o-2", t(30)),  # late, in lateness
                             msg("inventory", inventory(t(20)), "i-1", t(20)),          # duplicate, later pane
                             msg("inventory", inventory(BASE - timedelta(minutes=9)), "i-old",
                                 BASE - timedelta(minutes=9))])                          # beyond lateness
              .advance_watermark_to_infinity())

    def checks(out):
        assert_that(out.dead_letters | beam.Map(lambda r: (r["event_id"], r["stage"], r["error_type"])),
                    equal_to([("bad-1", "parse", "invalid_json"), ("bad-2", "decode", "unknown_event_type")]),
                    label="DeadLetters")
        assert_that(out.events | beam.Map(lambda e: e[1]["event_id"]),
                    equal_to(["o-1", "i-1", "o-2", "i-old"]), label="DedupedEvents")
        assert_that(out.files | beam.Map(lambda f: (f["event_type"], f["pane_index"], f["timing"], f["count"])),
                    equal_to([("order", 0, "ON_TIME", 1), ("inventory", 0, "ON_TIME", 1),
                              ("order", 1, "LATE", 1)]), label="Panes")

    run_stream(stream, outdir, checks=checks)

    found = files_under(outdir)
    assert sorted(found) == sorted([
        "order/2025/02/08/13/09/order_2025020813090001.json",
        "order/2025/02/08/13/09/order_2025020813090002.json",       # the late pane: its own file
        "inventory/2025/02/08/13/09/inventory_2025020813090001.json",
        next(k for k in found if k.startswith("_too_late/inventory/2025/02/08/13/00/inventory_202502081300_")),
    ])
    assert [r["status"] for r in found["order/2025/02/08/13/09/order_2025020813090002.json"]] == ["processing"]
    on_time = found["order/2025/02/08/13/09/order_2025020813090001.json"][0]
    assert on_time["event_time"] == "2025-02-08T13:09:10.000000Z" and on_time["source"] == "stream"


def test_windows_across_hour_and_day_boundaries(outdir):
    eve = datetime(2025, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    stream = (TestStream()
              .advance_watermark_to(ts(eve - timedelta(minutes=1)))
              .add_elements([msg("user_activity", activity(eve), "u-1", eve),
                             msg("user_activity", activity(eve + timedelta(seconds=45)), "u-2",
                                 eve + timedelta(seconds=45)),
                             msg("inventory", inventory(eve + timedelta(seconds=45)), "i-2",
                                 eve + timedelta(seconds=45))])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir, ["--max_future_skew_s=300"])
    assert sorted(files_under(outdir)) == [
        "inventory/2026/01/01/00/00/inventory_2026010100000001.json",
        "user_activity/2025/12/31/23/59/user_activity_2025123123590001.json",
        "user_activity/2026/01/01/00/00/user_activity_2026010100000001.json",
    ]


def test_every_order_status_change_is_kept(outdir):
    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    statuses = ["pending", "processing", "shipped", "delivered"]
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg("order", order(t(5 + 10 * i), status=s), f"o-{s}", t(5 + 10 * i))
                             for i, s in enumerate(statuses)])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir)
    rows = files_under(outdir)["order/2025/02/08/13/09/order_2025020813090001.json"]
    assert [r["status"] for r in rows] == statuses
    assert {r["order_id"] for r in rows} == {"ORD-1"}


def test_shards_split_a_pane_into_distinct_files(outdir):
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg("inventory", inventory(BASE + timedelta(seconds=i), inventory_id=f"INV-{i}"),
                                 f"i-{i}", BASE + timedelta(seconds=i)) for i in range(40)])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir, ["--num_file_shards=4"])
    found = files_under(outdir)
    assert len(found) == 4
    assert all(name.endswith("01.json") for name in found)
    assert sum(len(rows) for rows in found.values()) == 40
    assert len({r["event_id"] for rows in found.values() for r in rows}) == 40
