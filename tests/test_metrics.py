"""Per-minute metrics (pipeline/metrics.py) in the job's graph on a
TestStream: what each row counts, versions as late data arrives, a final
version when the minute's lateness ends, a new generation for a far-late
arrival after that, and the lag histogram's precision."""

from __future__ import annotations

import math
from datetime import timedelta

import apache_beam as beam
import orjson
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.transforms.window import TimestampedValue

from pipeline.graph import build_pipeline
from pipeline.metrics import bucket_upper_ms, lag_bucket, percentile
from pipeline.options import EcommerceOptions
from tests.helpers import BASE, activity, graph_sinks, inventory, order

EMIT_S = 5
M09, M00 = "2025-02-08T13:09:00.000000Z", "2025-02-08T13:00:00.000000Z"


def t(seconds: float):
    return BASE + timedelta(seconds=seconds)


def msg(body, event_at, published_at=None):
    """A Pub/Sub message as the read gives it: body, no attributes, publish
    time; the Beam timestamp is the publish time (Dataflow's default)."""
    published_at = published_at or event_at
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return TimestampedValue((data, {}, published_at), published_at.timestamp())


def run_metrics(stream, check, tmp_path, extra=()):
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={tmp_path / 'out'}",
                               "--max_event_age_days=0", "--late_firing_delay_s=5", "--allowed_lateness_s=180",
                               f"--metrics_emit_s={EMIT_S}", *extra])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        clock = ProcessingClock()
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(), messages=p | stream, clock=clock)
        assert_that(out.metrics | beam.Map(lambda r: r.row), check)


class ProcessingClock:
    """The job's processing-time clock in a TestStream test: 0 (the
    TestStream's processing time starts there and the test advances it)."""

    def __call__(self):
        return 0.0


def versions(rows):
    """{(minute, type): [row, ...] by (generation order, version)}."""
    out = {}
    for row in sorted(rows, key=lambda r: (r["minute"], r["event_type"], r["version"])):
        out.setdefault((row["minute"], row["event_type"]), []).append(row)
    return out


def current(rows):
    """What the view metrics_per_minute_current computes (its SQL is run on
    the emulator in tests/test_analytics_views.py): the last version of each
    generation, counts added over generations."""
    last = {}
    for row in rows:
        key = (row["minute"], row["event_type"], row["generation"])
        if key not in last or row["version"] > last[key]["version"]:
            last[key] = row
    out = {}
    for (minute, event_type, _), row in last.items():
        acc = out.setdefault((minute, event_type), {"events": 0, "duplicates": 0, "conflicts": 0, "dead_letters": 0,
                                                    "late": 0, "far_late": 0, "generations": 0, "reasons": {}})
        for name in ("events", "duplicates", "conflicts", "dead_letters", "late", "far_late"):
            acc[name] += row[name]
        acc["generations"] += 1
        for r in row["dead_letter_reasons"]:
            acc["reasons"][r["reason"]] = acc["reasons"].get(r["reason"], 0) + r["count"]
    return out


def test_each_count_of_a_minute_and_its_update_by_late_data(tmp_path):
    w_end = BASE + timedelta(minutes=1)
    old = BASE - timedelta(minutes=9)
    other_user = "0ther000-0000-4000-8000-000000000002"
    stream = (TestStream()
              .advance_watermark_to(t(0).timestamp())
              .add_elements([msg(order(t(10), status="pending"), t(10)),
                             msg(inventory(t(20)), t(20)),
                             msg(inventory(t(20)), t(20)),                                  # duplicate
                             msg(activity(t(21)), t(21)),
                             msg(activity(t(22), user_id=other_user), t(22)),
                             msg(activity(t(23)), t(23)),
                             msg(b'{"event_type": "order", "order_id": ', t(24)),            # malformed
                             msg(order(t(25), event_type="refund"), t(25))])                # unknown type
              .advance_processing_time(EMIT_S + 1)                                           # version 1
              .advance_watermark_to((w_end + timedelta(seconds=5)).timestamp())
              .add_elements([msg(order(t(30), status="processing"), t(30), w_end + timedelta(seconds=40)),  # late
                             msg(inventory(t(20)), t(20), w_end + timedelta(seconds=41)),   # duplicate, later
                             msg(inventory(t(20), quantity_change=-3), t(20), w_end + timedelta(seconds=42)),  # conflict
                             msg(inventory(old, inventory_id="far-1"), old, w_end + timedelta(seconds=43))])  # far late
              .advance_processing_time(EMIT_S + 1)                                           # version 2
              .advance_watermark_to((BASE + timedelta(minutes=15)).timestamp())              # final versions
              .advance_watermark_to_infinity())

    def check(rows):
        by_key = versions(rows)
        order_rows = by_key[(M09, "order")]
        seen = [(r["version"], r["events"], r["late"], r["is_final"]) for r in order_rows]
        # Version 1 (processing time passed, before the late event), then at
        # least one version with it, the last one final; versions only grow.
        assert seen[0] == (1, 1, 0, False), seen
        assert [v for v, *_ in seen] == list(range(1, len(seen) + 1)), seen
        assert seen[-1][1:] == (2, 1, True) and not any(final for *_, final in seen[:-1]), seen
        assert [e for _, e, _, _ in seen] == sorted(e for _, e, _, _ in seen), seen
        assert {r["generation"] for r in order_rows} == {order_rows[0]["generation"]}  # one generation
        final = {key: rows_[-1] for key, rows_ in by_key.items()}
        assert all(r["is_final"] for r in final.values())
        assert final[(M09, "order")]["unique_users"] == 1
        assert final[(M09, "user_activity")]["events"] == 3
        assert final[(M09, "user_activity")]["unique_users"] == 2
        inv = final[(M09, "inventory")]
        assert (inv["events"], inv["duplicates"], inv["conflicts"], inv["unique_users"]) == (1, 2, 1, None)
        unknown = final[(M09, "unknown")]
        assert (unknown["events"], unknown["dead_letters"]) == (0, 2)
        assert unknown["dead_letter_reasons"] == [{"reason": "invalid_json", "count": 1},
                                                  {"reason": "unknown_event_type", "count": 1}]
        far = final[(M00, "inventory")]
        assert (far["events"], far["far_late"], far["late"]) == (1, 1, 0)
        # lag from publish to ingest is known for every event; event -> ingest too
        assert final[(M09, "order")]["lag_publish_p50_ms"] is not None
        assert final[(M09, "order")]["lag_event_p99_ms"] >= final[(M09, "order")]["lag_event_p50_ms"]
        assert len({r["metrics_id"] for r in rows}) == len(rows)  # one insertId per version

    run_metrics(stream, check, tmp_path)


def test_a_far_late_arrival_after_the_release_starts_a_generation_that_adds_up(tmp_path):
    """Ten events of minute 13:09; the watermark passes 13:09's end plus the
    lateness (final row, state released); two more of 13:09 arrive: a new
    generation with 2 events, both far late, and the view's sum is 12."""
    first = [msg(activity(t(i)), t(i)) for i in range(10)]
    later_publish = BASE + timedelta(minutes=10)
    far = [msg(activity(t(30 + i), user_id=f"far-user-{i}"), t(30 + i), later_publish) for i in range(2)]
    stream = (TestStream()
              .advance_watermark_to(t(0).timestamp())
              .add_elements(first)
              .advance_watermark_to((BASE + timedelta(minutes=5)).timestamp())                 # released
              .add_elements(far)
              .advance_processing_time(EMIT_S + 1)
              .advance_watermark_to((BASE + timedelta(minutes=15)).timestamp())
              .advance_watermark_to_infinity())

    def check(rows):
        mine = [r for r in rows if r["event_type"] == "user_activity"]
        generations = {}
        for r in mine:
            generations.setdefault(r["generation"], []).append(r)
        assert len(generations) == 2, mine
        finals = sorted((max(g, key=lambda r: r["version"]) for g in generations.values()), key=lambda r: r["events"])
        assert [(r["events"], r["far_late"], r["unique_users"], r["is_final"]) for r in finals] == [
            (2, 2, 2, True), (10, 0, 1, True)]
        total = current(rows)[(M09, "user_activity")]
        assert (total["events"], total["far_late"], total["generations"]) == (12, 2, 2)

    run_metrics(stream, check, tmp_path)


def test_no_metrics_step_when_analytics_are_off(tmp_path):
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={tmp_path}",
                               "--analytics=off"])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(),
                             messages=p | TestStream().add_elements([msg(activity(t(0)), t(0))])
                             .advance_watermark_to_infinity())
    assert out.metrics is None
    assert not any("MinuteMetrics" in label for label in p.applied_labels)


@pytest.mark.parametrize("spread", [1.0, 37.0, 12_345.0])
def test_lag_percentiles_are_within_nine_percent(spread):
    values = [1 + spread * i / 997 for i in range(1000)]
    histogram = {}
    for v in values:
        b = lag_bucket(v)
        histogram[b] = histogram.get(b, 0) + 1
    for q in (50, 90, 99):
        exact = sorted(values)[math.ceil(q / 100 * len(values)) - 1]
        got = percentile(histogram, q)
        assert exact <= got * 1.0001 and got <= max(exact * 2 ** (1 / 8), 1) + 0.5, (q, exact, got)
    assert percentile({}, 50) is None
    assert lag_bucket(-250) == 0 and bucket_upper_ms(0) == 1  # clock skew counts as <= 1 ms
