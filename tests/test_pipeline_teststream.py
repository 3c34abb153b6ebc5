"""The job's graph on TestStream (BundleBasedDirectRunner): event time,
dedup and conflicts, dead letters, on-time / late / far-late files in the
brief's layout, a watermark far ahead of the data, replays that write
nothing new."""

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

from pipeline.graph import build_pipeline
from pipeline.options import EcommerceOptions
from schemas.contract import read_line
from tests.helpers import BASE, activity, graph_sinks, inventory, order

W_END = BASE + timedelta(minutes=1)  # minute [13:09, 13:10)
LATE_DELAY = 5


def msg(body, t: datetime, attributes=None):
    """A message as the brief's producer sends it (body only), stamped with
    its event time as the read would be on Dataflow with publish time."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return TimestampedValue((data, attributes or {}), t.timestamp())


def ts(t: datetime) -> float:
    return t.timestamp()


@pytest.fixture
def outdir(tmp_path):
    return str(tmp_path / "output")


def run_stream(stream, outdir, extra=(), checks=None):
    """Run the job's graph on `stream`; `checks(outputs)` adds assert_that steps.
    Processing time for the job is the TestStream's (it starts at 0)."""
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={outdir}",
                               "--max_event_age_days=0", f"--late_firing_delay_s={LATE_DELAY}",
                               "--allowed_lateness_s=180", *extra])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(), messages=p | stream,
                             clock=lambda: 0.0)
        if checks:
            checks(out)


def files_under(outdir) -> dict[str, list[dict]]:
    found = {}
    for root, _, names in os.walk(outdir):
        for n in names:
            if n.endswith(".json") and not n.startswith("_MANIFEST"):
                path = os.path.join(root, n)
                found[os.path.relpath(path, outdir)] = [read_line(line) for line in open(path, "rb").read().splitlines()]
    return found


def manifest(outdir, folder) -> dict:
    return orjson.loads(open(os.path.join(outdir, folder, "_MANIFEST.json"), "rb").read())


def raw_bytes(outdir) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(outdir):
        for n in names:
            out[os.path.relpath(os.path.join(root, n), outdir)] = open(os.path.join(root, n), "rb").read()
    return out


def test_on_time_late_far_late_duplicates_conflicts_and_dead_letters(outdir):
    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    old = BASE - timedelta(minutes=9)
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg(order(t(10), status="pending"), t(10)),
                             msg(inventory(t(20)), t(20)),
                             msg(inventory(t(20)), t(20)),                                  # duplicate, same bundle
                             msg(b'{"event_type": "order", "order_id": ', t(21)),            # malformed
                             msg(order(t(22), event_type="refund"), t(22))])                # unknown type
              .advance_watermark_to(ts(W_END + timedelta(seconds=5)))                       # the minute is complete
              .add_elements([msg(order(t(30), status="processing"), t(30)),                 # late, within lateness
                             msg(inventory(t(20)), t(20)),                                  # duplicate, later
                             msg(inventory(t(20), quantity_change=-3), t(20)),              # conflict
                             msg(inventory(old, inventory_id="far-1"), old)])               # far late: 9 minutes
              .advance_processing_time(LATE_DELAY + 1)                                      # the late file
              .advance_watermark_to_infinity())

    def checks(out):
        assert_that(out.dead_letters | beam.Map(lambda r: (r["stage"], r["error_type"], r["event_type"])),
                    equal_to([("parse", "invalid_json", None), ("parse", "unknown_event_type", "refund")]),
                    label="DeadLetters")
        assert_that(out.events | beam.Map(lambda a: (a.event.event_type, a.event.event_id)),
                    equal_to([("order", f"{order(BASE)['order_id']}:pending"),
                              ("inventory", inventory(BASE)["inventory_id"]),
                              ("order", f"{order(BASE)['order_id']}:processing"), ("inventory", "far-1")]),
                    label="AcceptedOnce")
        assert_that(out.conflicts | beam.Map(lambda r: (r["stage"], r["event_id"])),
                    equal_to([("dedup", inventory(BASE)["inventory_id"])]), label="Conflicts")
        assert_that(out.files | beam.Map(lambda f: (f.event_type, f.minute[11:16], f.seq, f.timing, f.lines)),
                    equal_to([("order", "13:09", 1, "on_time", 1), ("inventory", "13:09", 1, "on_time", 1),
                              ("order", "13:09", 2, "late", 1), ("inventory", "13:00", 1, "on_time", 1)]),
                    label="Files")

    run_stream(stream, outdir, checks=checks)
    found = files_under(outdir)
    assert sorted(found) == [
        "inventory/2025/02/08/13/00/inventory_2025020813000001.json",  # far late: in the folder of its event time
        "inventory/2025/02/08/13/09/inventory_2025020813090001.json",
        "order/2025/02/08/13/09/order_2025020813090001.json",
        "order/2025/02/08/13/09/order_2025020813090002.json",           # the late file: its own, same folder
    ]
    assert [r["status"] for r in found["order/2025/02/08/13/09/order_2025020813090002.json"]] == ["processing"]
    on_time = found["order/2025/02/08/13/09/order_2025020813090001.json"][0]
    assert on_time["event_time"] == "2025-02-08T13:09:10.000000Z" and on_time["event_type"] == "order"
    assert "ingest_time" not in on_time and "publish_time" not in on_time  # nothing about arrival
    assert found["inventory/2025/02/08/13/09/inventory_2025020813090001.json"][0]["quantity_change"] == -2
    assert manifest(outdir, "order/2025/02/08/13/09") == {
        "event_type": "order", "minute": "2025-02-08T13:09:00.000000Z", "shard": 0, "num_shards": 1,
        "complete": True, "lines": 2, "complete_as_of_watermark": "2025-02-08T13:10:00.000000Z",
        "files": [{"name": "order_2025020813090001.json", "lines": 1},
                  {"name": "order_2025020813090002.json", "lines": 1}]}


def test_a_watermark_far_ahead_of_the_data_drops_nothing(outdir):
    """Everything arrives a day after its event time, in three bursts: every
    event lands in its own minute folder, none is dropped by the runner."""
    day_later = BASE + timedelta(days=1)
    events = [(inventory(BASE + timedelta(minutes=m, seconds=s), inventory_id=f"inv-{m}-{s}"),
               BASE + timedelta(minutes=m, seconds=s)) for m in range(3) for s in (1, 31)]
    stream = TestStream().advance_watermark_to(ts(day_later))
    for i in range(0, len(events), 2):
        stream = stream.add_elements([msg(b, t) for b, t in events[i:i + 2]]).advance_watermark_to(
            ts(day_later + timedelta(minutes=i + 1)))
    stream = stream.advance_watermark_to_infinity()
    run_stream(stream, outdir)
    found = files_under(outdir)
    assert sorted(found) == [f"inventory/2025/02/08/13/{9 + m:02d}/inventory_2025020813{9 + m:02d}0001.json"
                             for m in range(3)]
    assert sum(len(v) for v in found.values()) == len(events)


def test_windows_across_hour_and_day_boundaries(outdir):
    eve = datetime(2025, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    stream = (TestStream()
              .advance_watermark_to(ts(eve - timedelta(minutes=1)))
              .add_elements([msg(activity(eve), eve),
                             msg(activity(eve + timedelta(seconds=45)), eve + timedelta(seconds=45)),
                             msg(inventory(eve + timedelta(seconds=45)), eve + timedelta(seconds=45))])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir)
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
              .add_elements([msg(order(t(5 + 10 * i), status=s), t(5 + 10 * i)) for i, s in enumerate(statuses)])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir)
    rows = files_under(outdir)["order/2025/02/08/13/09/order_2025020813090001.json"]
    assert [r["status"] for r in rows] == statuses
    assert {r["order_id"] for r in rows} == {order(BASE)["order_id"]}


def test_shards_number_their_files_into_the_folder(outdir):
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg(inventory(BASE + timedelta(seconds=i), inventory_id=f"INV-{i}"),
                                 BASE + timedelta(seconds=i)) for i in range(40)])
              .advance_watermark_to_infinity())
    run_stream(stream, outdir, ["--num_file_shards=4"])
    found = files_under(outdir)
    assert sorted(n[-9:-5] for n in found) == ["0001", "0002", "0003", "0004"]  # one file per shard, 4 digits
    assert sum(len(rows) for rows in found.values()) == 40
    assert len({r["event_id"] for rows in found.values() for r in rows}) == 40
    assert sorted(n for n in os.listdir(os.path.join(outdir, "inventory/2025/02/08/13/09"))
                  if n.startswith("_MANIFEST")) == [f"_MANIFEST-{s:02d}.json" for s in range(4)]


def _replay_stream(bodies):
    # The watermark passes the folder's release time before the input ends,
    # so the files written then are seen by assert_that.
    return (TestStream()
            .advance_watermark_to(ts(BASE))
            .add_elements([msg(b, BASE + timedelta(seconds=5)) for b in bodies])
            .advance_watermark_to(ts(W_END + timedelta(minutes=5)))
            .advance_watermark_to_infinity())


def test_a_replay_writes_nothing_new_and_a_later_event_adds_a_file(outdir):
    """Three runs of the job on one folder, each starting with no state, as
    after a crash: the same events again write nothing (the folder is read
    back); one new event becomes the folder's next file; a conflicting copy
    is recognised from the files."""
    first = [inventory(BASE + timedelta(seconds=i), inventory_id=f"INV-{i}") for i in range(5)]
    run_stream(_replay_stream(first), outdir)
    before = raw_bytes(outdir)
    assert len([n for n in before if not n.endswith("_MANIFEST.json")]) == 1

    run_stream(_replay_stream(list(reversed(first))), outdir)
    assert raw_bytes(outdir) == before  # byte-identical: nothing rewritten, nothing added

    conflicting = inventory(BASE + timedelta(seconds=2), inventory_id="INV-2", quantity_change=9)

    def checks(out):
        assert_that(out.conflicts | beam.Map(lambda r: (r["stage"], r["event_id"])),
                    equal_to([("files", "INV-2")]), label="ConflictFromFiles")
        assert_that(out.files | beam.Map(lambda f: (f.seq, f.timing, f.lines)), equal_to([(2, "far_late", 1)]),
                    label="OneNewFile")

    # No dedup memory of the first run: the folder itself knows INV-0 and INV-2.
    run_stream(_replay_stream([first[0], inventory(BASE, inventory_id="INV-new"), conflicting]), outdir,
               checks=checks)
    found = files_under(outdir)
    assert [r["event_id"] for r in found["inventory/2025/02/08/13/09/inventory_2025020813090002.json"]] == ["INV-new"]
    assert manifest(outdir, "inventory/2025/02/08/13/09")["lines"] == 6


def test_a_replay_after_a_crash_keeps_files_and_bigquery_on_the_same_copy(outdir):
    """Before the crash, BigQuery got event A but its file was still pending.
    The replay brings a conflicting copy B first, then A: B is a conflict
    with the stored copy and goes nowhere else, A goes to its folder only
    (not to BigQuery again): files and BigQuery hold the same copy."""
    from pipeline.validation import Limits, parse_message
    from schemas.contract import identity_digest

    a = inventory(BASE + timedelta(seconds=5))
    b = inventory(BASE + timedelta(seconds=5), quantity_change=-7)
    stored = parse_message(orjson.dumps(a), None, None, now=W_END, limits=Limits())
    seen = {identity_digest("inventory", stored.event_id): stored.content_hash}
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg(b, BASE + timedelta(seconds=5))])
              .add_elements([msg(a, BASE + timedelta(seconds=5))])
              .advance_watermark_to(ts(W_END + timedelta(minutes=5)))
              .advance_watermark_to_infinity())
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={outdir}",
                               "--max_event_age_days=0"])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(), messages=p | stream,
                             clock=lambda: 0.0, seen=seen)
        assert_that(out.events, equal_to([]), label="NothingNewForBigQuery")
        assert_that(out.conflicts | beam.Map(lambda r: (r["stage"], r["conflicting_content_hash"] != stored.content_hash)),
                    equal_to([("replay", True)]), label="TheConflictingCopy")
    (rows,) = files_under(outdir).values()
    assert [r["quantity_change"] for r in rows] == [-2]  # A, the copy BigQuery holds


def test_a_file_written_just_before_a_crash_gets_its_manifest_entry_back(outdir):
    """The job died between writing a file and its manifest: the next time
    the folder is read back, the manifest is repaired and the file reported."""
    first = [inventory(BASE + timedelta(seconds=i), inventory_id=f"INV-{i}") for i in range(3)]
    run_stream(_replay_stream(first), outdir)
    folder = os.path.join(outdir, "inventory/2025/02/08/13/09")
    os.remove(os.path.join(folder, "_MANIFEST.json"))  # as if the crash came before the manifest write

    def checks(out):
        assert_that(out.files | beam.Map(lambda f: (f.seq, f.timing, f.lines)),
                    equal_to([(1, "recovered", 3), (2, "far_late", 1)]), label="RepairedAndNew")

    run_stream(_replay_stream([inventory(BASE, inventory_id="INV-new")]), outdir, checks=checks)
    assert manifest(outdir, "inventory/2025/02/08/13/09")["lines"] == 4


@pytest.mark.parametrize("analytics", ["on", "off"])
def test_a_burst_from_one_user_alerts_once_in_the_job_and_only_when_analytics_are_on(outdir, analytics):
    """The whole graph: 103 distinct events of one user in one minute alert
    once with --alert_threshold=100; 60 events of another user sent twice do
    not (the copies are dropped by the dedup, never counted); --analytics=off
    has no alerts step at all."""
    bot = [msg(activity(BASE + timedelta(milliseconds=10 * i)), BASE + timedelta(seconds=1)) for i in range(103)]
    twice = [msg(activity(BASE + timedelta(milliseconds=10 * i), user_id="another-user"), BASE + timedelta(seconds=1))
             for i in range(60)]
    stream = TestStream().add_elements(bot + twice).add_elements(twice).advance_watermark_to_infinity()

    def checks(out):
        if analytics == "off":
            assert out.alerts is None
            return
        assert_that(out.alerts | beam.Map(lambda a: (a.user_id, a.event_count, a.threshold)),
                    equal_to([(activity(BASE)["user_id"], 101, 100)]))

    run_stream(stream, outdir, extra=[f"--analytics={analytics}"], checks=checks)
