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
