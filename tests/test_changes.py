"""Corrections, invalidations and deletions (seed 002) through the job's
graph on a TestStream: each change is a version of its own (a row and a
file line, never a conflict), its duplicates are dropped, a different content
under the same version is a conflict, and a malformed change is a dead
letter with a reason. The views that apply the changes are tested on the
emulator (tests/test_changes_views.py)."""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipeline.validation import Limits, Rejected, parse_message
from schemas.contract import format_timestamp, line_version_id, read_line
from tests.helpers import BASE, activity, inventory, order
from tests.test_pipeline_teststream import files_under, msg, run_stream, ts

T = lambda s: BASE + timedelta(seconds=s)  # noqa: E731


@pytest.fixture
def outdir(tmp_path):
    return str(tmp_path / "output")

INV = inventory(T(5))
INV_ID = INV["inventory_id"]


def change(body: dict, kind: str, at_s: float, reason=None, **over) -> dict:
    out = {**body, "change_type": kind, "changed_at": format_timestamp(T(at_s)), **over}
    if reason:
        out["change_reason"] = reason
    return out


def test_the_brief_events_change_messages_are_versions_of_their_event():
    now = BASE + timedelta(minutes=5)
    parse = lambda b: parse_message(orjson.dumps(b), None, None, now=now, limits=Limits(max_event_age=None))  # noqa: E731
    original, corrected = parse(INV), parse(change(INV, "correction", 40, quantity_change=-3))
    assert (original.event_id, original.change, original.version_id) == (INV_ID, None, INV_ID)
    assert corrected.event_id == INV_ID and corrected.change.kind == "correction"
    assert corrected.version_id == f"{INV_ID}@correction@2025-02-08T13:09:40.000000Z"
    assert corrected.content_hash != original.content_hash and corrected.extra is None  # the keys are envelope
    # a user action has no id of its own: its change names it by the id the job gave it
    action = parse(activity(T(5)))
    invalid = parse(change(activity(T(5)), "invalidation", 50, "bot traffic", event_id=action.event_id))
    assert invalid.event_id == action.event_id and invalid.change.reason == "bot traffic"
    # without change_type, the words are fields the schema does not know (kept in extra, as before)
    plain = parse(dict(INV, changed_at="2025-02-08T13:09:40Z"))
    assert plain.change is None and plain.extra == {"changed_at": "2025-02-08T13:09:40Z"}


@pytest.mark.parametrize("body,needle", [
    (change(INV, "undo", 40), "change_type 'undo' is not one of correction, invalidation, deletion"),
    (dict(INV, change_type="correction"), "a correction needs changed_at"),
    (change(INV, "deletion", 40, changed_at="yesterday"), "changed_at"),
    (change(INV, "deletion", 40, "x" * 2000), "change_reason"),
    (change(INV, "correction", 10 ** 6), "in the future"),
])
def test_a_malformed_change_is_refused_with_its_reason(body, needle):
    with pytest.raises(Rejected) as info:
        parse_message(orjson.dumps(body), None, None, now=BASE + timedelta(minutes=5), limits=Limits(max_event_age=None))
    assert info.value.error_type == "invalid_change" and needle in info.value.error


def test_changes_flow_as_versions_through_dedup_rows_and_files(outdir):
    pending = order(T(8), status="pending")
    stream = (TestStream()
              .advance_watermark_to(ts(BASE))
              .add_elements([msg(INV, T(5)), msg(pending, T(8))])
              .add_elements([msg(change(INV, "correction", 40, "counted twice", quantity_change=-1), T(40)),
                             msg(change(INV, "correction", 40, "counted twice", quantity_change=-1), T(40)),  # dup
                             msg(change(INV, "correction", 40, quantity_change=-7), T(40)),   # same version, other
                             msg(change(INV, "invalidation", 45), T(45)),
                             msg(change(pending, "deletion", 50, "customer asked"), T(50)),
                             msg(b'{"event_type": "inventory", "change_type": "undo"}', T(51))])
              .advance_watermark_to_infinity())

    def checks(out):
        assert_that(out.events | beam.Map(lambda a: a.event.version_id), equal_to([
            INV_ID, f"{pending['order_id']}:pending",
            f"{INV_ID}@correction@2025-02-08T13:09:40.000000Z", f"{INV_ID}@invalidation@2025-02-08T13:09:45.000000Z",
            f"{pending['order_id']}:pending@deletion@2025-02-08T13:09:50.000000Z"]), label="Versions")
        assert_that(out.conflicts | beam.Map(lambda r: (r["stage"], r["event_id"])),
                    equal_to([("dedup", INV_ID)]), label="OneConflict")
        assert_that(out.dead_letters | beam.Map(lambda r: r["error_type"]), equal_to(["invalid_change"]),
                    label="DeadLetter")
        assert_that(out.alerts | beam.Map(lambda a: a), equal_to([]), label="NoAlerts")

    run_stream(stream, outdir, checks=checks)
    lines = [line for found in files_under(outdir).values() for line in found]
    by_version = {line_version_id(line): line for line in lines}
    assert len(lines) == len(by_version) == 5  # each version once, the original kept as it was
    corrected = by_version[f"{INV_ID}@correction@2025-02-08T13:09:40.000000Z"]
    assert corrected["quantity_change"] == -1 and corrected["change_reason"] == "counted twice"
    assert by_version[INV_ID]["quantity_change"] == -2 and "change_type" not in by_version[INV_ID]
    folders = {path.rsplit("/", 1)[0] for path in files_under(outdir)}
    assert folders == {"inventory/2025/02/08/13/09", "order/2025/02/08/13/09"}  # the folder of the event's time


def test_table_rows_carry_the_change_and_insert_ids_differ_per_version(outdir):
    from tests.helpers import TableRows, graph_sinks

    tables = TableRows()
    stream = (TestStream().advance_watermark_to(ts(BASE))
              .add_elements([msg(INV, T(5)), msg(change(INV, "correction", 40, quantity_change=-1), T(40))])
              .advance_watermark_to_infinity())

    def checks(out):
        assert_that(tables.written["WriteEventTables"]
                    | beam.Map(lambda t: (t[1]["change_type"], t[1]["changed_at"], t[1]["quantity_change"], t[2])),
                    _check_rows, label="Rows")

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipeline.graph import build_pipeline
    from pipeline.options import EcommerceOptions

    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={outdir}",
                               "--max_event_age_days=0"])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(tables), messages=p | stream,
                             clock=lambda: 0.0)
        checks(out)


def _check_rows(rows):
    assert sorted(r[:3] for r in rows if r[0]) == [("correction", "2025-02-08T13:09:40.000000Z", -1)], rows
    assert [r[:3] for r in rows if not r[0]] == [(None, None, -2)], rows
    assert len({r[3] for r in rows}) == 2, "one insertId per version"


def test_a_file_line_of_a_change_reads_back_as_its_version():
    line = read_line(orjson.dumps({"event_type": "inventory", "event_id": "i-1", "change_type": "deletion",
                                   "changed_at": "2025-02-08T13:09:40Z"}))
    assert line_version_id(line) == "i-1@deletion@2025-02-08T13:09:40.000000Z"
    assert line_version_id({"event_id": "i-1"}) == "i-1"
