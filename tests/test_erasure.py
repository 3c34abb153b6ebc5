"""GDPR erasure in the job (pipeline/erasure.py) on a TestStream: once a
subject is on the erased list, their events (as a user and as a customer:
one id space) are dropped before anything is written, their dead letters
keep the reason but lose the payload, and everyone else is untouched."""

from __future__ import annotations

import apache_beam as beam
import orjson
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipeline.erasure import REDACTED, StaticSubjects
from pipeline.graph import build_pipeline
from pipeline.options import EcommerceOptions
from schemas.contract import subject_hash
from tests.helpers import BASE, TableRows, activity, graph_sinks, inventory, order
from tests.test_pipeline_teststream import msg, ts

ERASED = "e7a5ed00-0000-4000-8000-0000000000aa"
OTHER = "c0ffee00-0000-4000-8000-000000000001"


def test_an_erased_subjects_later_events_are_suppressed(tmp_path):
    from datetime import timedelta

    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    bodies = [order(t(1), customer_id=ERASED), activity(t(2), user_id=ERASED), order(t(3), customer_id=OTHER,
              order_id="0b7c1c52-8f0e-4e1a-9a53-6f2d4c1e0099"), activity(t(4), user_id=OTHER), inventory(t(5))]
    malformed = orjson.dumps(dict(order(t(6), customer_id=ERASED), total_amount="lots"))
    stream = (TestStream().advance_watermark_to(ts(BASE))
              .add_elements([msg(b, t(i)) for i, b in enumerate(bodies)] + [msg(malformed, t(6))])
              .advance_watermark_to_infinity())
    tables = TableRows()
    options = PipelineOptions(["--streaming", "--project=local-project", f"--output_prefix={tmp_path}",
                               "--max_event_age_days=0"])
    with TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = build_pipeline(p, options.view_as(EcommerceOptions), graph_sinks(tables), messages=p | stream,
                             clock=lambda: 0.0, erased=StaticSubjects({subject_hash(ERASED)}))
        assert_that(out.events | beam.Map(lambda a: a.event.event_type), equal_to(["order", "user_activity",
                                                                                   "inventory"]), label="Kept")
        assert_that(out.dead_letters | beam.Map(lambda r: (r["error_type"], r["payload"], r["payload_base64"])),
                    equal_to([("schema_mismatch", REDACTED, None)]), label="Redacted")
    lines = [line for f in tmp_path.rglob("*.json") if not f.name.startswith("_") for line in f.read_bytes().splitlines()]
    assert len(lines) == 3 and not any(ERASED.encode() in line for line in lines)
    assert sum(OTHER.encode() in line for line in lines) == 2


def test_the_verification_sql_covers_every_column_that_names_a_subject():
    """sql/gdpr/verify_erased.sql is plain SQL an auditor can read: it must
    name every table and user column the schemas have, and the payload
    tables, so that a new table with a user cannot escape the proof."""
    from pathlib import Path

    from schemas import event_specs, table_specs

    sql = (Path(__file__).resolve().parent.parent / "sql" / "gdpr" / "verify_erased.sql").read_text()
    for spec in event_specs().values():
        if spec.user_field:
            assert f"{spec.name}` WHERE {spec.user_field} = @subject" in sql, spec.name
    for name, spec in table_specs().items():
        for column in ("user_id", "customer_id"):
            if any(f["name"] == column for f in spec.payload_fields) and not spec.event_type:
                assert f"{name}` WHERE {column} = @subject" in sql, name
    for name in ("dead_letter", "conflicts"):
        assert f".{name}`" in sql and "payload" in sql


class _SlowList:
    """A BigQuery client stand-in for ErasedSubjects: each query returns the
    current `rows`, after `gate` opens (set by default); `fail` raises."""

    def __init__(self, rows):
        import threading

        self.rows, self.queries, self.fail = list(rows), 0, None
        self.gate, self.started = threading.Event(), threading.Event()
        self.gate.set()

    def __call__(self, project):
        return self

    def query(self, sql, timeout=None):
        self.queries += 1
        self.started.set()
        return self

    def result(self, timeout=None):
        from types import SimpleNamespace

        assert self.gate.wait(30), "the test never opened the gate"
        if self.fail:
            raise self.fail
        return [SimpleNamespace(subject_hash=h) for h in self.rows]


def _until(condition, seconds=30):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def test_the_list_is_refreshed_in_the_background_never_on_the_events_path(monkeypatch, caplog):
    import threading

    from pipeline import erasure

    monkeypatch.setattr(erasure, "_LOADED", {})
    caplog.set_level("INFO", logger="pipeline.erasure")
    bq = _SlowList(["h1"])
    bq.gate.clear()
    erased = erasure.ErasedSubjects("p", "d", refresh_s=0.01, client_factory=bq)
    first = threading.Thread(target=erased.hashes)
    first.start()
    assert bq.started.wait(30)
    first.join(0.2)
    assert first.is_alive()  # the first list is read before anything is decided
    bq.gate.set()
    first.join(30)
    try:
        assert erased.hashes() == {"h1"}
        bq.rows = ["h1", "h2"]  # an erasure: the refresher finds it without any event asking
        _until(lambda: erasure._LOADED[("p", "d")].hashes == {"h1", "h2"})
        assert "erased subjects: 2" in caplog.text

        bq.started = threading.Event()
        bq.gate.clear()  # the next query hangs
        assert bq.started.wait(30)
        bq.rows = ["h1", "h2", "h3"]  # what it will answer once let through
        queries = bq.queries
        for _ in range(100):  # events go on against the list in hand while the query hangs
            assert erased.hashes() == {"h1", "h2"}
        assert bq.queries == queries
        bq.fail = RuntimeError("BigQuery went away")
        bq.gate.set()
        _until(lambda: "could not be refreshed" in caplog.text)
        assert erased.hashes() == {"h1", "h2"}  # the last list is kept
        bq.fail = None
        _until(lambda: erased.hashes() == {"h1", "h2", "h3"})  # and replaced once BigQuery answers again
    finally:
        erasure._LOADED[("p", "d")].stop.set()


def test_without_a_first_list_nothing_is_decided(monkeypatch):
    from pipeline import erasure

    monkeypatch.setattr(erasure, "_LOADED", {})
    bq = _SlowList([])
    bq.fail = RuntimeError("no BigQuery")
    with pytest.raises(RuntimeError, match="no BigQuery"):
        erasure.ErasedSubjects("p", "d", refresh_s=60, client_factory=bq).hashes()
