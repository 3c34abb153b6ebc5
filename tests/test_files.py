"""The atomic, create-once writer (pipeline.files) on local disk; gs:// is
covered by the stack tests."""

import os

from pipeline import files


def test_write_creates_folders_and_replaces_atomically(tmp_path):
    path = str(tmp_path / "a" / "b" / "c.json")
    writer = files.FileWriter()
    writer.replace(path, b"one\n")
    writer.replace(path, b"two\n")
    assert open(path, "rb").read() == b"two\n"
    assert files.list_files(str(tmp_path)) == [path]
    assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp-")] == []


def test_create_is_once_and_a_retry_is_a_no_op(tmp_path):
    path = str(tmp_path / "x.json")
    writer = files.FileWriter()
    assert writer.create(path, b"content\n")
    assert writer.create(path, b"content\n")       # a retry with the same bytes: fine, nothing changes
    assert not writer.create(path, b"other\n")     # the name is taken by something else: refused
    assert open(path, "rb").read() == b"content\n"
    assert writer.read(path) == b"content\n" and writer.list(str(tmp_path)) == [path]


def test_a_slow_read_says_what_it_waits_for_and_holds_the_checkpoint(monkeypatch, caplog):
    """Beam's storage client retries an outage silently: after a few seconds
    the job says what it waits for, and the local checkpoint holds still."""
    import threading

    from pipeline import progress

    release, stalled = threading.Event(), []
    stalls = progress._Stalls()
    monkeypatch.setattr(progress, "STALLS", stalls)

    def slow_call():
        assert release.wait(5)
        return b"data"

    def watch():
        while not stalls.stalled(lag_limit_s=60):
            release.wait(0.01)
        stalled.append(stalls.stalled(lag_limit_s=60))
        release.set()

    threading.Thread(target=watch, daemon=True).start()
    caplog.set_level("WARNING")
    assert files._said_if_slow("Cloud Storage (reading gs://b/x)", slow_call, after_s=0.05) == b"data"
    assert stalled == ["waiting for Cloud Storage (reading gs://b/x)"]
    assert "waiting for Cloud Storage (reading gs://b/x): no answer" in caplog.text
    assert "answered again" in caplog.text and stalls.stalled(lag_limit_s=60) is None
