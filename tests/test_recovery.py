"""The local crash-recovery arithmetic (localrun/recovery.py): where a
restarted job replays from."""

from datetime import datetime, timedelta, timezone

import pytest

from pipeline import progress
from localrun.recovery import Checkpointer, read_checkpoint, resolve_replay_from


@pytest.fixture(autouse=True)
def fresh_progress(monkeypatch):
    """Each test its own process-wide progress facts (other tests wait on
    services and leave some behind)."""
    monkeypatch.setattr(progress, "HELD", progress._Held())
    monkeypatch.setattr(progress, "STALLS", progress._Stalls())


def test_the_safe_point_trails_now_by_the_margin_once_the_job_has_run_that_long(tmp_path):
    cp = Checkpointer(str(tmp_path / "c.json"), margin_s=120)
    start = cp.started
    assert cp.safe_point(start + timedelta(seconds=30)) == start - timedelta(seconds=120)  # too young: its start
    assert cp.safe_point(start + timedelta(minutes=10)) == start + timedelta(minutes=8)


def test_the_safe_point_never_passes_an_event_still_waiting_for_its_file(tmp_path):
    cp = Checkpointer(str(tmp_path / "c.json"), margin_s=20)
    now = cp.started + timedelta(minutes=10)
    held_since = now - timedelta(minutes=3)  # acknowledged 3 minutes ago, its folder not written yet
    key = ("inventory", 0, 0)
    progress.HELD.hold(key, held_since.timestamp())
    try:
        assert cp.safe_point(now) <= held_since - timedelta(seconds=1)
    finally:
        progress.HELD.release(key)
    assert cp.safe_point(now) == now - timedelta(seconds=20)


def test_the_checkpoint_file_round_trips_into_replay_from(tmp_path):
    path = tmp_path / "c.json"
    cp = Checkpointer(str(path), margin_s=60)
    cp.write()
    doc = read_checkpoint(path)
    assert resolve_replay_from("auto", str(path)) == datetime.fromisoformat(doc["safe_replay_from"])
    assert resolve_replay_from("auto", str(tmp_path / "none.json")) is None
    assert resolve_replay_from("2025-02-08T13:09:00Z", None) == datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)
    assert resolve_replay_from("", None) is None


def test_the_safe_point_stays_put_while_a_sink_is_waited_out_or_the_job_lags(tmp_path):
    cp = Checkpointer(str(tmp_path / "c.json"), margin_s=60)
    now = cp.started + timedelta(minutes=10)
    before = cp.safe_point(now)
    progress.STALLS.waiting_for("BigQuery (inserting into order_events)")
    try:
        assert cp.safe_point(now + timedelta(minutes=5)) == before  # the outage: nothing pulled is safe yet
    finally:
        progress.STALLS.done("BigQuery (inserting into order_events)")
    assert cp.safe_point(now + timedelta(minutes=6)) == now + timedelta(minutes=5)
    progress.STALLS.lag(45)  # 45 s behind publish time, more than half the margin
    held = cp.safe_point(now + timedelta(minutes=7))
    assert held == now + timedelta(minutes=5)
