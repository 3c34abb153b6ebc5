"""Window file names and the atomic writer."""

from datetime import datetime, timezone

import os

import orjson
import pytest

from pipeline import files

START = datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)


def test_spec_example_path():
    assert (files.pane_file_path("output", "order", START, pane_index=0)
            == "output/order/2025/02/08/13/09/order_2025020813090001.json")


@pytest.mark.parametrize("event_type", ["order", "inventory", "user_activity"])
def test_late_panes_and_shards_get_distinct_names(event_type):
    names = {files.pane_file_path("gs://b/output", event_type, START, pane, shard)
             for pane in range(120) for shard in range(3)}
    assert len(names) == 360
    assert files.pane_file_path("o", event_type, START, 1).endswith(f"{event_type}_2025020813090002.json")
    assert files.pane_file_path("o", event_type, START, 0, shard=7).endswith("0701.json")


def test_day_and_hour_boundaries_use_window_start():
    start = datetime(2025, 12, 31, 23, 59, tzinfo=timezone.utc)
    assert files.pane_file_path("o", "inventory", start, 0) == "o/inventory/2025/12/31/23/59/inventory_2025123123590001.json"


def test_too_late_path_is_in_its_own_tree_and_deterministic():
    t = datetime(2025, 2, 8, 13, 9, 42, tzinfo=timezone.utc)
    a = files.too_late_file_path("o/", "order", t, "e-1")
    assert a.startswith("o/_too_late/order/2025/02/08/13/09/order_202502081309_") and a.endswith(".json")
    assert a == files.too_late_file_path("o", "order", t, "e-1")
    assert a != files.too_late_file_path("o", "order", t, "e-2")


def test_unvalidated_type_never_builds_a_path():
    with pytest.raises(ValueError):
        files.pane_file_path("o", "../../etc", START, 0)


def test_local_write_creates_folders_and_is_deterministic(tmp_path):
    rows = [{"event_id": "b", "event_time": "2025-02-08T13:09:02Z"}, {"event_id": "a", "event_time": "2025-02-08T13:09:01Z"}]
    path = files.pane_file_path(str(tmp_path), "order", START, 0)
    writer = files.FileWriter()
    writer.write(path, files.ndjson(rows))
    first = open(path, "rb").read()
    writer.write(path, files.ndjson(list(reversed(rows))))  # a retry
    assert open(path, "rb").read() == first
    assert [orjson.loads(line)["event_id"] for line in first.splitlines()] == ["a", "b"]
    assert files.list_files(str(tmp_path)) == [path]


def test_panes_never_overwrite_and_retries_are_idempotent(tmp_path):
    writer = files.FileWriter()
    name = lambda i: files.pane_file_path(str(tmp_path), "order", START, i)  # noqa: E731
    full = files.ndjson([{"event_id": "a", "event_time": "t1"}, {"event_id": "b", "event_time": "t2"}])
    assert writer.create_pane(name, full, 0) == name(0)
    assert writer.create_pane(name, full, 0) == name(0)  # a retry of the same pane: same file, no new one
    # A restarted job re-fires pane 0 with only part of the window: it gets the next free name.
    partial = files.ndjson([{"event_id": "b", "event_time": "t2"}])
    assert writer.create_pane(name, partial, 0) == name(1)
    assert open(name(0), "rb").read() == full
    assert sorted(os.listdir(os.path.dirname(name(0)))) == [os.path.basename(name(0)), os.path.basename(name(1))]
