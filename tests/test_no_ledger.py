"""The ledger-free production check (reconcile.no_ledger) on a temporary
folder, with BigQuery's answers faked: healthy data passes, and each check
fails on the fault it exists for. (On the emulators:
tests/test_end_to_end.py runs it on a real run, healthy and damaged.)"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from pipeline.validation import Limits, parse_message
from reconcile import no_ledger
from schemas.contract import bigquery_row, minute_of
from tests.helpers import BASE, inventory
from tests.test_reconcile import _events, _file, _write_folders

NOW = BASE + timedelta(minutes=5)
START, END = minute_of(BASE), minute_of(BASE) + timedelta(minutes=5)


class FakeBigQuery:
    """Answers the check's queries from rows (as the event tables return the
    first copy of each version),
    a files_written table and a list of unrecorded conflicts."""

    def __init__(self, events):
        self.rows = {e.event_id: _stored(e) for e in events}
        self.files_written = {}
        self.unrecorded = []

    def query(self, client, sql, params=None):
        if "COUNT(DISTINCT" in sql:
            if "inventory_events" not in sql:
                return []
            counts = {}
            for row in self.rows.values():
                counts[minute_of(row["event_time"])] = counts.get(minute_of(row["event_time"]), 0) + 1
            return [{"minute": m, "n": n} for m, n in counts.items()]
        if "files_written" in sql:
            return [{"minute": m, "event_type": "inventory", "n": n} for m, n in self.files_written.items()]
        if "WITH contents" in sql:
            return [{"event_id": i} for i in self.unrecorded] if "inventory_events" in sql else []
        if "SELECT * FROM" in sql:
            return list(self.rows.values()) if "inventory_events`" in sql else []
        raise AssertionError(f"unexpected query: {sql}")


def _stored(event):
    """A BigQuery row as the client returns it: TIMESTAMP as datetime."""
    row = orjson.loads(orjson.dumps(bigquery_row(event, None, NOW, "stream")))
    row["event_time"] = event.event_time
    return row


@pytest.fixture
def world(tmp_path, monkeypatch):
    events = _events()
    root = str(tmp_path / "output")
    _write_folders(root, events)
    fake = FakeBigQuery(events)
    for e in events:
        fake.files_written[minute_of(e.event_time)] = fake.files_written.get(minute_of(e.event_time), 0) + 1
    monkeypatch.setattr(no_ledger, "query", fake.query)
    return root, fake


def failing(root, deep=True, start=START, end=END):
    outcome = no_ledger.run_no_ledger(None, "p", "d", root, start, end, deep=deep)
    return {r.name for r in outcome["results"] if not r.passed}


def test_healthy_data_passes_in_both_modes(world):
    root, _ = world
    assert failing(root, deep=False) == set() and failing(root) == set()


def test_an_empty_range_fails(world):
    root, _ = world
    assert "nl_scope" in failing(root, start=START - timedelta(days=1), end=START - timedelta(hours=23))


def test_the_jobs_own_counts_disagreeing_fail(world):
    root, fake = world
    fake.files_written[START] += 1
    assert failing(root, deep=False) == {"nl_per_minute"}


def test_a_file_outside_the_layout_fails(world):
    root, _ = world
    path = _file(root).replace("0001.json", "01.json")
    open(path, "wb").write(b"{}\n")
    assert failing(root, deep=False) == {"nl_layout"}


def test_an_unrecorded_conflict_fails(world):
    root, fake = world
    fake.unrecorded = ["inv-0"]
    assert failing(root, deep=False) == {"nl_conflicts"}


def test_an_event_only_in_bigquery_fails(world):
    root, fake = world
    extra = parse_message(orjson.dumps(inventory(BASE, inventory_id="bq-only")), None, now=NOW, limits=Limits())
    fake.rows["bq-only"] = _stored(extra)
    assert {"nl_missing_in_files", "nl_per_minute"} <= failing(root)


def test_an_event_only_in_the_files_fails(world):
    root, fake = world
    del fake.rows["inv-1"]
    assert {"nl_missing_in_bigquery", "nl_per_minute"} <= failing(root)


def test_an_event_in_two_files_fails(world):
    root, _ = world
    line = open(_file(root), "rb").read().splitlines(keepends=True)[0]
    open(_file(root, seq=2), "wb").write(line)
    assert "nl_duplicates_in_files" in failing(root)


def test_different_values_in_bigquery_and_the_files_fail(world):
    root, fake = world
    fake.rows["inv-2"]["warehouse_id"] = "elsewhere"
    assert failing(root) == {"nl_content"}
