"""The backfill's graph without the emulators: history files read in every
format the brief's exporters write, the job's parser, exact dedup in file
order, dead letters that say where the record is, and the minute folders
(a second run over the same history writes no file). The emulator tests
(tests/test_backfill_stack.py) add S3, the staging tables and the MERGE."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from datetime import datetime, timedelta, timezone

import apache_beam as beam
import orjson
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.backfill import build_backfill, records_of
from pipeline.options import EcommerceOptions
from reconcile.files import scan
from schemas.contract import minute_of, parse_timestamp
from simulator.history import generate, history_faults, write_history
from simulator.ledger import LedgerWriter, aggregate, read_lines
from tests.helpers import BASE, TableRows, activity, graph_sinks, inventory, order


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _records(path) -> list[tuple[int, bytes]]:
    return list(records_of(str(path)))


BODIES = [orjson.dumps(order(BASE)), orjson.dumps(inventory(BASE)), orjson.dumps(activity(BASE))]


def test_line_files_plain_gzipped_and_misnamed(tmp_path):
    text = BODIES[0] + b"\n\n" + BODIES[1] + b"\r\n" + BODIES[2]  # a blank line, CRLF, no final newline
    assert _records(_write(tmp_path / "a.jsonl", text)) == [(1, BODIES[0]), (3, BODIES[1]), (4, BODIES[2])]
    assert _records(_write(tmp_path / "b.jsonl.gz", gzip.compress(text))) == _records(tmp_path / "a.jsonl")
    # gzip is told by its magic bytes, not by the name
    assert _records(_write(tmp_path / "c.data", gzip.compress(text))) == _records(tmp_path / "a.jsonl")


def test_json_arrays_and_what_only_looks_like_one(tmp_path):
    array = b"[\n" + b",\n".join(BODIES) + b"\n]\n"
    assert _records(_write(tmp_path / "a.json", array)) == [(1, BODIES[0]), (2, BODIES[1]), (3, BODIES[2])]
    assert _records(_write(tmp_path / "a.json.gz", gzip.compress(array))) == _records(tmp_path / "a.json")
    # lines whose first one is an array: not one array, so lines
    lines = orjson.dumps([1, 2]) + b"\n" + BODIES[0] + b"\n"
    assert _records(_write(tmp_path / "b.json", lines)) == [(1, b"[1,2]"), (2, BODIES[0])]
    # a .jsonl file is lines even when its only line is an array
    assert _records(_write(tmp_path / "c.jsonl", orjson.dumps([order(BASE)]) + b"\n")) == [
        (1, orjson.dumps([order(BASE)]))]


def test_a_damaged_gzip_yields_what_precedes_the_damage_then_raises(tmp_path):
    data = gzip.compress(b"\n".join(orjson.dumps(inventory(BASE, inventory_id=f"id-{i}")) for i in range(20000)))
    path = _write(tmp_path / "cut.jsonl.gz", data[: len(data) // 2])
    got = []
    with pytest.raises((EOFError, OSError)):
        for record in records_of(path):
            got.append(record)
    assert len(got) > 1000 and got[0] == (1, orjson.dumps(inventory(BASE, inventory_id="id-0")))


def _opts(prefix) -> EcommerceOptions:
    return PipelineOptions([f"--output_prefix={prefix}", "--project=test-project"]).view_as(EcommerceOptions)


_KEPT: dict = {}


def _keep(item, name: str):
    """Collects a PCollection's elements in this process (the FnApiRunner runs
    the steps here; a module-level function is pickled by reference)."""
    _KEPT.setdefault(name, []).append(item)


def _run_backfill(history: str, out: str):
    """Run the graph; its event-table rows, dead letters, conflicts and files."""
    tables = TableRows()
    _KEPT.clear()
    with beam.Pipeline(runner="FnApiRunner") as p:
        result = build_backfill(p, _opts(out), graph_sinks(tables), [os.path.join(history, "**")])
        for name, pcoll in (("events", tables.written["WriteEventTables"]), ("dead", result.dead_letters),
                            ("conflicts", result.conflicts), ("files", result.files)):
            _ = pcoll | f"Keep{name}" >> beam.Map(_keep, name)
    return {name: list(_KEPT.get(name, [])) for name in ("events", "dead", "conflicts", "files")}


def test_history_with_every_fault_loads_once_in_file_order_and_a_second_run_writes_nothing(tmp_path):
    start = datetime(2025, 2, 8, 22, 0, tzinfo=timezone.utc)  # across a day boundary
    faults = history_faults(duplicate_fraction=0.1, conflict_fraction=0.08, malformed_fraction=0.08,
                            extra_field_fraction=0.05)
    hours = generate(start, 4, 60, faults, seed=3)
    ledger = LedgerWriter(tmp_path / "ledger.jsonl")
    history = tmp_path / "history"
    write_history(str(history), hours, ledger, "hist")
    ledger.close()
    rows = aggregate(read_lines(tmp_path / "ledger.jsonl"))
    good = {(r["event_type"], r["event_id"]): r for r in rows if not r["malformed"] and not r["conflict"]}
    malformed = [r for r in rows if r["malformed"]]
    conflicts = [r for r in rows if r["conflict"]]
    assert len(good) >= 200 and malformed and conflicts and any(r["copies"] > 1 for r in good.values())
    assert {p.name for p in history.rglob("*") if p.is_file()} >= {"events.jsonl", "events.jsonl.gz", "events.json",
                                                                    "events.json.gz"}
    out = tmp_path / "out"
    got = _run_backfill(str(history), str(out))

    # BigQuery rows: each identity once, with the content written first (file order), marked backfill
    stored = {}
    for table, row, _ in got["events"]:
        key = (table.removesuffix("_events"), row["event_id"])
        assert key not in stored, key
        stored[key] = row
    assert set(stored) == set(good)
    assert all(stored[k]["content_hash"] == r["content_hash"] and stored[k]["source"] == "backfill"
               and stored[k]["publish_time"] is None for k, r in good.items())
    # every malformed record is a dead letter that says where it is
    dead = {r["payload_sha256"]: r for r in got["dead"]}
    assert {r["payload_sha256"] for r in malformed} <= set(dead)
    for r in malformed:
        attrs = json.loads(dead[r["payload_sha256"]]["attributes"])
        assert attrs["source_file"].startswith(str(history)) and int(attrs["source_line"]) >= 1
    # every conflicting copy is a conflict row of stage backfill
    assert Counter(c["stage"] for c in got["conflicts"]) == {"backfill": len(conflicts)}
    assert {(c["event_type"], c["event_id"]) for c in got["conflicts"]} == {(r["event_type"], r["event_id"])
                                                                            for r in conflicts}
    # the files: the brief's layout, each event once in the folder of its event-time minute
    inventory_ = scan(str(out), None)
    assert {k for k, places in inventory_.locations.items() if places} == set(good)
    for key, r in good.items():
        (place,) = inventory_.locations[key]
        assert place.minute == minute_of(parse_timestamp(r["event_time"])) and place.content_hash == r["content_hash"]
    assert got["files"] and {f.timing for f in got["files"]} == {"backfill"}

    # the same history again: every folder already holds its events
    again = _run_backfill(str(history), str(out))
    assert again["files"] == []
    # the same copies kept, so the same conflicts (their ids: the MERGE keeps each once)
    assert sorted(c["conflict_id"] for c in again["conflicts"]) == sorted(c["conflict_id"] for c in got["conflicts"])
    assert sum(1 for p in out.rglob("*.json") if not p.name.startswith("_")) == len(got["files"])


def test_copies_of_one_event_keep_the_first_in_file_order(tmp_path):
    first = inventory(BASE, quantity_change=5)
    second = inventory(BASE, quantity_change=6)  # the same inventory_id: a conflict
    _write(tmp_path / "h" / "2025" / "a.jsonl", orjson.dumps(first) + b"\n" + orjson.dumps(first) + b"\n")
    _write(tmp_path / "h" / "2025" / "b.jsonl", orjson.dumps(second) + b"\n")
    got = _run_backfill(str(tmp_path / "h"), str(tmp_path / "out"))
    (row,) = [r for _, r, _ in got["events"]]
    assert row["quantity_change"] == 5
    (conflict,) = got["conflicts"]
    assert conflict["stage"] == "backfill" and orjson.loads(conflict["payload"])["quantity_change"] == 6


def test_old_events_are_accepted_and_the_future_is_not(tmp_path):
    """History has no age limit (the stream refuses events older than 30
    days); the future skew limit still holds."""
    old = activity(BASE - timedelta(days=400))
    future = activity(datetime.now(timezone.utc) + timedelta(days=1))
    _write(tmp_path / "h" / "x.jsonl", orjson.dumps(old) + b"\n" + orjson.dumps(future) + b"\n")
    got = _run_backfill(str(tmp_path / "h"), str(tmp_path / "out"))
    assert len(got["events"]) == 1 and [d["error_type"] for d in got["dead"]] == ["timestamp_out_of_range"]


def test_the_history_replay_follows_event_time_at_its_speed():
    """python -m simulator.replay: records in event-time order, offsets from
    the first event; a malformed record keeps the place of the one before."""
    from simulator.replay import schedule

    records = [orjson.dumps(activity(BASE + timedelta(minutes=10))), orjson.dumps(order(BASE)),
               b"{not json", orjson.dumps(inventory(BASE + timedelta(minutes=5)))]
    planned = schedule(records)
    assert [round(at) for at, _, _ in planned] == [0, 0, 300, 600]
    assert [p.malformed for _, _, p in planned] == [False, True, False, False]
    assert planned[1][1] == b"{not json" and planned[1][2].malformed_kind == "invalid_json"


def test_a_dead_letter_replays_with_its_own_bytes_or_says_why_not():
    """python -m deadletters: a row gives back the original bytes and
    attributes; a cut payload or a BigQuery row cannot be replayed."""
    import base64
    import hashlib

    from deadletters.__main__ import message_of
    from pipeline.validation import Rejected, dead_letter_row

    data = b"\xff\xfe not utf-8"
    row = dead_letter_row(Rejected("decode", "not_utf8", "x"), data, {"event_type": "order"}, None, BASE)
    assert message_of(row) == (data, {"event_type": "order"})
    text = dead_letter_row(Rejected("parse", "invalid_json", "x"), b'{"a": ', {}, None, BASE)
    assert message_of(text) == (b'{"a": ', {})
    big = b"x" * (2 << 20)
    cut = dead_letter_row(Rejected("decode", "oversized", "x"), big, {}, None, BASE)
    assert "kept only in part" in message_of(cut)
    refused = dict(text, stage="bigquery_insert")
    assert "BigQuery row" in message_of(refused)
    assert hashlib.sha256(base64.b64decode(row["payload_base64"])).hexdigest() == row["payload_sha256"]
