"""InsertRows called directly with a fake BigQuery client: refused rows go to
the dead letters at once, a request refused as a whole is split without
back-off, outages are waited out and retried, nothing is lost or doubled."""

from __future__ import annotations

import time

import pytest
import requests
from google.api_core import exceptions as gexc

from apache_beam.pvalue import TaggedOutput
from pipeline.retry import Outages
from pipeline.bigquery_sink import InsertRows


class FakeClient:
    """insert_rows_json like the official client. `bad` values make a request
    fail as a whole (as the emulator does for a value it cannot take) or
    per row (as real BigQuery does), `outage` requests fail to connect."""

    def __init__(self, bad=(), per_row=False, outage=0, hang=None):
        self.bad, self.per_row, self.outage = set(bad), per_row, outage
        self.stored, self.requests = [], 0

    def insert_rows_json(self, table, rows, row_ids, retry=None, timeout=None):
        self.requests += 1
        if self.outage:
            self.outage -= 1
            raise requests.ConnectionError("connection refused")
        bad = [i for i, r in enumerate(rows) if r["v"] in self.bad]
        if bad and not self.per_row:
            raise gexc.InternalServerError("An internal error occurred")
        if bad:
            return [{"index": i, "errors": [{"reason": "invalid" if i in bad else "stopped",
                                             "message": "Invalid NUMERIC value" if i in bad else ""}]}
                    for i in range(len(rows))]
        self.stored.extend(zip(row_ids, rows))
        return []


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    waits = []
    real_note = Outages.note

    def note(self, exc):
        waits.append(str(exc))
        real_note(self, exc)

    monkeypatch.setattr(Outages, "note", note)
    monkeypatch.setattr(Outages, "sleep", staticmethod(lambda s: None))
    return waits


def sink(client, batch_size=500, dead_letter_table=False):
    fn = InsertRows("p", "d", batch_size=batch_size, is_dead_letter_table=dead_letter_table,
                    client_factory=lambda project: client)
    fn.setup()
    fn.start_bundle()
    return fn


def drain(fn, rows):
    out = []
    for i, value in enumerate(rows):
        outputs = list(fn.process(("t", {"v": value}, f"id-{i}")))
        assert all(isinstance(o, TaggedOutput) and o.tag == "dead_letter" for o in outputs)
        out.extend(outputs)
    out = [o.value for o in out]
    out.extend(o.value.value for o in fn.finish_bundle())  # finish_bundle wraps in the global window
    assert all(isinstance(o, dict) for o in out)
    return out


def test_a_request_refused_whole_is_split_to_the_bad_row_after_a_few_tries(no_sleep):
    """A 500 is first taken as BigQuery's transient backendError (3 tries with
    back-off), then as the emulator's answer to a bad value: the batch is split,
    without further back-off, until the refused row is alone."""
    client = FakeClient(bad={"0.30000000000000004"})
    fn = sink(client, batch_size=256)
    rows = [f"{i}.5" for i in range(255)] + ["0.30000000000000004"]
    started = time.monotonic()
    dead = drain(fn, rows)
    assert time.monotonic() - started < 1 and len(no_sleep) == 3  # three back-offs, then no more
    assert [d["error_type"] for d in dead] == ["bigquery_refused"]
    assert "0.30000000000000004" in dead[0]["payload"] and "InternalServerError" in dead[0]["error"]
    assert sorted(v["v"] for _, v in client.stored) == sorted(rows[:-1])  # every other row stored, once
    assert client.requests <= 3 + 2 * 8 + 1  # the tries, then about 2 log2(n) requests


def test_rows_refused_one_by_one_go_to_dead_letters_and_neighbours_are_resent():
    client = FakeClient(bad={"bad"}, per_row=True)
    dead = drain(sink(client), ["a", "bad", "b"])
    assert len(dead) == 1 and "Invalid NUMERIC value" in dead[0]["error"]
    assert sorted(v["v"] for _, v in client.stored) == ["a", "b"]


def test_a_transient_500_is_retried_not_dead_lettered(no_sleep):
    class Flaky(FakeClient):
        def insert_rows_json(self, table, rows, row_ids, retry=None, timeout=None):
            if self.requests < 2:
                self.requests += 1
                raise gexc.InternalServerError("backendError")
            return super().insert_rows_json(table, rows, row_ids, retry, timeout)

    client = Flaky()
    assert drain(sink(client), ["a", "b"]) == [] and len(no_sleep) == 2
    assert [v["v"] for _, v in client.stored] == ["a", "b"]


def test_rate_limits_are_waited_out_like_outages(no_sleep):
    class Limited(FakeClient):
        def insert_rows_json(self, table, rows, row_ids, retry=None, timeout=None):
            if self.requests < 5:
                self.requests += 1
                raise gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}])
            return super().insert_rows_json(table, rows, row_ids, retry, timeout)

    client = Limited()
    assert drain(sink(client), ["a"]) == [] and len(no_sleep) == 5


def test_an_outage_is_waited_out_and_nothing_is_lost_or_doubled(no_sleep):
    client = FakeClient(outage=3)
    dead = drain(sink(client), ["a", "b", "c"])
    assert dead == [] and len(no_sleep) == 3 and "connection refused" in no_sleep[0]
    assert [i for i, _ in client.stored] == ["id-0", "id-1", "id-2"]


def test_an_outage_during_a_split_resends_only_what_was_not_stored(no_sleep):
    class Flaky(FakeClient):
        def insert_rows_json(self, table, rows, row_ids, retry=None, timeout=None):
            if self.requests == 7:  # 3 tries, the whole batch, x, a: the right half, b and c, finds it gone
                self.requests += 1
                raise gexc.ServiceUnavailable("unavailable")
            return super().insert_rows_json(table, rows, row_ids, retry, timeout)

    client = Flaky(bad={"x"})
    dead = drain(sink(client), ["x", "a", "b", "c"])
    assert len(dead) == 1 and len(no_sleep) == 3 + 1 and "unavailable" in no_sleep[-1]
    stored = [i for i, _ in client.stored]
    assert sorted(stored) == ["id-1", "id-2", "id-3"] and len(stored) == len(set(stored))


def test_refusals_of_the_dead_letter_table_are_logged_not_emitted(caplog):
    client = FakeClient(bad={"x"})
    assert drain(sink(client, dead_letter_table=True), ["x", "y"]) == []
    assert "dead-letter row refused by BigQuery" in caplog.text
    assert [v["v"] for _, v in client.stored] == ["y"]


def test_on_dataflow_an_outage_is_raised_after_the_bound_for_the_runner_to_retry(no_sleep, monkeypatch):
    """A bounded wait (Dataflow's) gives the error back to the runner instead
    of pinning the work item; nothing was stored, so the retried bundle
    sends every row again and nothing is lost."""
    clock = iter(range(0, 10_000, 50))  # each look at the clock: 50 s later
    monkeypatch.setattr(Outages, "clock", staticmethod(lambda: next(clock)))
    client = FakeClient(outage=1000)
    fn = InsertRows("p", "d", max_wait_s=120, client_factory=lambda project: client)
    fn.setup()
    fn.start_bundle()
    list(fn.process(("t", {"v": "a"}, "id-0")))
    with pytest.raises(requests.ConnectionError):
        list(fn.finish_bundle())
    assert 2 <= len(no_sleep) <= 4 and client.stored == []
