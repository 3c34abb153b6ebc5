"""Each composite transform of the job alone on a TestStream
(BundleBasedDirectRunner): parsing, dedup, the replay skip and the minute
files with their lateness policy. The whole graph is
tests/test_pipeline_teststream.py; these pin each step's own contract."""

from __future__ import annotations

import os
from datetime import timedelta

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipeline.files import FileWriter
from pipeline.minute_files import MinuteFiles
from pipeline.policy import LatenessPolicy
from pipeline.transforms import Accepted, DeduplicateEvents, ParseEvents, SkipStoredEvents
from pipeline.validation import Limits
from schemas.contract import identity_digest, read_line
from tests.helpers import BASE, accepted_at, streaming_pipeline, inventory, order

NOW = BASE + timedelta(minutes=1)


def streaming():
    return streaming_pipeline()


def acc(body) -> TimestampedValue:
    return accepted_at(body, NOW)



def key(a: Accepted):
    return a.event.event_type, a.event.event_id


def test_parse_events_alone_splits_events_from_dead_letters_with_reasons():
    stream = (TestStream()
              .add_elements([(orjson.dumps(order(BASE)), {}), (b"not json", {}),
                             (orjson.dumps({**inventory(BASE), "quantity_change": "many"}), {})])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | ParseEvents(Limits(max_event_age=None))
        assert_that(out.events | "Keys1" >> beam.Map(key), equal_to([("order", f"{order(BASE)['order_id']}:pending")]),
                    label="Events")
        assert_that(out.dead_letter | "Pick1" >> beam.Map(lambda r: r["error_type"]),
                    equal_to(["invalid_json", "schema_mismatch"]), label="Reasons")


def test_dedup_alone_keeps_the_first_copy_and_reports_a_conflict():
    first, again = acc(inventory(BASE)), acc(inventory(BASE))
    changed = acc(inventory(BASE, quantity_change=-7))
    stream = (TestStream()
              .add_elements([first, again])
              .advance_processing_time(30)
              .add_elements([changed, acc(inventory(BASE, inventory_id="other"))])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | DeduplicateEvents(memory_s=600, buckets=4, clock=lambda: 0.0)
        assert_that(out.events | "Keys2" >> beam.Map(key), equal_to([("inventory", inventory(BASE)["inventory_id"]),
                                                          ("inventory", "other")]), label="FirstCopies")
        assert_that(out.conflicts | "Pick2" >> beam.Map(lambda r: (r["stage"], r["event_id"])),
                    equal_to([("dedup", inventory(BASE)["inventory_id"])]), label="Conflict")


def test_skip_stored_alone_sends_what_bigquery_holds_to_the_files_only():
    held, new, changed = acc(inventory(BASE)), acc(inventory(BASE, inventory_id="new")), \
        acc(inventory(BASE, inventory_id="changed", quantity_change=5))
    seen = {identity_digest("inventory", held.value.event.event_id): held.value.event.content_hash,
            identity_digest("inventory", "changed"): "another-content-hash"}
    stream = TestStream().add_elements([held, new, changed]).advance_watermark_to_infinity()
    with streaming() as p:
        out = p | stream | SkipStoredEvents(seen)
        assert_that(out.events | "Keys3" >> beam.Map(key), equal_to([("inventory", "new")]), label="ToBigQuery")
        assert_that(out.stored | "Keys4" >> beam.Map(key), equal_to([("inventory", inventory(BASE)["inventory_id"])]),
                    label="FilesOnly")
        assert_that(out.conflicts | "Pick3" >> beam.Map(lambda r: (r["stage"], r["event_id"])),
                    equal_to([("replay", "changed")]), label="Conflict")


@pytest.mark.parametrize("lateness_s", [60, 300])
def test_minute_files_alone_follow_the_lateness_policy(tmp_path, lateness_s):
    """On time at the minute's end; a late event within the policy's lateness
    is a late file of its folder; later than that it still lands in its
    folder (far late). The policy, not the test, decides which is which."""
    policy = LatenessPolicy(allowed_lateness_s=lateness_s, late_firing_delay_s=5)
    minute_end = BASE + timedelta(minutes=1)
    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    stream = (TestStream()
              .advance_watermark_to(BASE.timestamp())
              .add_elements([acc(inventory(t(5), inventory_id="a")), acc(inventory(t(6), inventory_id="a"))])
              .advance_watermark_to((minute_end + timedelta(seconds=30)).timestamp())
              .add_elements([acc(inventory(t(7), inventory_id="b"))])       # 30 s after the minute's end
              .advance_processing_time(6)
              .advance_watermark_to((minute_end + timedelta(seconds=120)).timestamp())
              .add_elements([acc(inventory(t(8), inventory_id="c"))])       # 120 s after the minute's end
              .advance_processing_time(6)
              .advance_watermark_to_infinity())
    out_dir = str(tmp_path / "out")
    with streaming() as p:
        written = p | stream | MinuteFiles(out_dir, policy, writer=FileWriter(), clock=lambda: 0.0)
        expected_c = "late" if lateness_s > 120 else "far_late"
        assert_that(written.files | "Pick4" >> beam.Map(lambda f: (f.seq, f.timing, f.lines)),
                    equal_to([(1, "on_time", 1), (2, "late", 1), (3, expected_c, 1)]), label="Files")
    folder = os.path.join(out_dir, "inventory/2025/02/08/13/09")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("_"))
    assert names == [f"inventory_20250208130900{i:02d}.json" for i in (1, 2, 3)]
    ids = [read_line(line)["inventory_id"] for n in names for line in open(os.path.join(folder, n), "rb")]
    assert ids == ["a", "b", "c"]  # "a" once: the folder keeps each event once


def test_minute_files_refuse_a_policy_that_is_not_per_minute():
    with pytest.raises(ValueError, match="per minute"):
        MinuteFiles("/tmp/x", LatenessPolicy(window_s=300))
