"""The files side of the reconciliation on a temporary folder: healthy files
pass, and each check fails on the fault it exists for."""

from __future__ import annotations

import os
from datetime import timedelta

import orjson
import pytest

from pipeline.minute_files import manifest_document
from pipeline.validation import Limits, parse_message
from reconcile.checks import files_checks
from reconcile.files import scan
from schemas.contract import file_path, format_timestamp, line_bytes, manifest_path, minute_of
from tests.helpers import BASE, inventory

NOW = BASE + timedelta(minutes=5)


def _events():
    bodies = [inventory(BASE + timedelta(seconds=10 * i), inventory_id=f"inv-{i}") for i in range(4)]
    bodies.append(inventory(BASE + timedelta(minutes=1, seconds=5), inventory_id="inv-late"))
    return [parse_message(orjson.dumps(b), None, now=NOW, limits=Limits()) for b in bodies]


def _ledger(events):
    return [{"event_type": e.event_type, "event_id": e.event_id, "event_time": format_timestamp(e.event_time),
             "content_hash": e.content_hash, "intended_delay_s": 40.0 if e.event_id == "inv-late" else 0.0,
             "malformed": False, "conflict": False, "far_late": False, "copies": 1} for e in events]


def _per_minute(events):
    counts = {}
    for e in events:
        key = (format_timestamp(minute_of(e.event_time)).replace(".000000", ""), e.event_type)
        counts[key] = counts.get(key, 0) + 1
    return [{"minute": m, "event_type": t, "producer_count": n, "bigquery_count": n, "failures": 0}
            for (m, t), n in sorted(counts.items())]


def _write_folders(root, events):
    by_minute = {}
    for e in events:
        by_minute.setdefault(minute_of(e.event_time), []).append(e)
    for minute, group in by_minute.items():
        path = file_path(root, "inventory", minute, 1)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"".join(line_bytes(e) for e in sorted(group, key=lambda e: e.event_id)))
        with open(manifest_path(root, "inventory", minute, 0, 1), "wb") as fh:
            fh.write(manifest_document("inventory", minute, 0, 1, [(1, len(group))]))


@pytest.fixture
def healthy(tmp_path):
    events = _events()
    root = str(tmp_path / "output")
    _write_folders(root, events)
    return root, events


def failing(root, events):
    results = files_checks(_ledger(events), scan(root), _per_minute(events))
    return {r.name for r in results if not r.passed}


def _file(root, minute_offset=0, seq=1):
    return file_path(root, "inventory", minute_of(BASE) + timedelta(minutes=minute_offset), seq)


def test_healthy_files_pass(healthy):
    assert failing(*healthy) == set()


def test_a_missing_line_fails(healthy):
    root, events = healthy
    path = _file(root)
    lines = open(path, "rb").read().splitlines(keepends=True)
    open(path, "wb").write(b"".join(lines[1:]))
    assert {"gcs_missing", "per_minute", "gcs_layout"} <= failing(root, events)  # the manifest's count too


def test_an_event_in_two_files_fails(healthy):
    root, events = healthy
    line = open(_file(root), "rb").read().splitlines(keepends=True)[0]
    open(_file(root, seq=2), "wb").write(line)
    assert {"gcs_duplicates", "gcs_layout"} <= failing(root, events)  # file 0002 is not in the manifest


def test_an_event_in_another_minutes_folder_fails(healthy):
    root, events = healthy
    late_file = _file(root, minute_offset=1)
    target = _file(root, minute_offset=3)
    os.makedirs(os.path.dirname(target))
    os.rename(late_file, target)
    assert {"gcs_misplaced", "gcs_late"} <= failing(root, events)


def test_a_changed_value_fails(healthy):
    root, events = healthy
    path = _file(root)
    data = open(path, "rb").read()
    open(path, "wb").write(data.replace(b'"quantity_change":-2', b'"quantity_change":-3', 1))
    assert failing(root, events) == {"gcs_content"}


@pytest.mark.parametrize("name", ["_too_late/inventory/2025/02/08/13/09/inventory_202502081309_ab12cd.json",
                                  "inventory/2025/02/08/13/09/inventory_20250208130901.json",
                                  "inventory/2025/02/08/13/09/order_2025020813090001.json"])
def test_a_file_outside_the_brief_layout_fails(healthy, name):
    root, events = healthy
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"{}\n")
    assert failing(root, events) == {"gcs_layout"}


def test_a_missing_manifest_fails(healthy):
    root, events = healthy
    os.remove(manifest_path(root, "inventory", minute_of(BASE), 0, 1))
    assert failing(root, events) == {"gcs_layout"}


def test_a_file_holding_another_copy_than_bigquery_fails(healthy):
    """Both copies were published (a conflict), but the files and BigQuery
    must hold the same one."""
    root, events = healthy
    ledger = _ledger(events)
    other = dict(ledger[0], content_hash="f" * 32, conflict=True)
    stored = {(r["event_type"], r["event_id"]): r["content_hash"] for r in ledger}
    stored[("inventory", "inv-0")] = "f" * 32  # BigQuery kept the other copy
    results = files_checks(ledger + [other], scan(root), _per_minute(events), stored)
    assert {r.name for r in results if not r.passed} == {"gcs_content"}


def test_a_change_read_back_from_bigquery_matches_its_file_line(tmp_path):
    """A change's version is event_id@kind@changed_at to the microsecond: the
    ledger row as the BigQuery client returns it (datetimes) must name the
    same version as the file line, or every change reads as missing."""
    from datetime import timezone

    from reconcile.checks import _jsonable

    changed_at = (BASE + timedelta(seconds=30, microseconds=509093)).astimezone(timezone.utc)
    body = {**inventory(BASE + timedelta(seconds=10), inventory_id="inv-1"),
            "change_type": "correction", "changed_at": format_timestamp(changed_at)}
    events = [*_events(), parse_message(orjson.dumps(body), None, now=NOW, limits=Limits())]
    root = str(tmp_path / "output")
    _write_folders(root, events)
    ledger = _ledger(events)
    ledger[-1].update(change_type="correction", changed_at=_jsonable(changed_at))
    results = files_checks(ledger, scan(root), _per_minute(events[:-1]))
    assert not {r.name for r in results if not r.passed}
    ledger[-1]["changed_at"] = _jsonable(changed_at.replace(microsecond=0))  # what the old formatting did
    results = files_checks(ledger, scan(root), _per_minute(events[:-1]))
    assert "gcs_missing" in {r.name for r in results if not r.passed}
