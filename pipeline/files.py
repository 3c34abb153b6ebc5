"""Window-pane files: names, content and an atomic write to local disk or gs://.

Layout (folders from the window START, in UTC):

    <prefix>/<type>/YYYY/MM/DD/HH/mm/<type>_<yyyyMMddHHmm><NNNN>.json

NNNN is two digits of shard then the pane's sequence (pane index + 1, at
least two digits), so the first pane of shard 0 is `0001`, its first late
pane `0002`: a late pane adds a file and never overwrites one, and a retry of
the same pane rewrites the same name with the same (sorted) content.

Events beyond the allowed lateness cannot join their window any more; they
are written one file per event under `<prefix>/_too_late/<type>/...` with the
same folder layout (from their event time) and a name made from the event id,
so reconciliation finds them and a redelivery rewrites the same file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime, timezone

import orjson

from schemas import event_types

TOO_LATE_DIR = "_too_late"


def _safe_type(event_type: str) -> str:
    # Only a validated event type ever names a folder; refuse anything else
    # rather than build a path from unvalidated input.
    if event_type not in event_types():
        raise ValueError(f"refusing to build a path for unknown event type {event_type!r:.60}")
    return event_type


def minute_folder(prefix: str, event_type: str, start: datetime) -> str:
    start = start.astimezone(timezone.utc)
    return f"{prefix.rstrip('/')}/{_safe_type(event_type)}/{start:%Y/%m/%d/%H/%M}"


def pane_file_path(prefix: str, event_type: str, window_start: datetime, pane_index: int, shard: int = 0) -> str:
    if not 0 <= shard <= 99 or pane_index < 0:
        raise ValueError(f"bad shard {shard} or pane index {pane_index}")
    folder = minute_folder(prefix, event_type, window_start)
    return f"{folder}/{event_type}_{window_start.astimezone(timezone.utc):%Y%m%d%H%M}{shard:02d}{pane_index + 1:02d}.json"


def too_late_file_path(prefix: str, event_type: str, event_time: datetime, event_id: str) -> str:
    folder = minute_folder(f"{prefix.rstrip('/')}/{TOO_LATE_DIR}", event_type, event_time)
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return f"{folder}/{event_type}_{event_time.astimezone(timezone.utc):%Y%m%d%H%M}_{digest}.json"


def ndjson(rows: list[dict]) -> bytes:
    """Deterministic newline-delimited JSON: sorted by (event_time, event_id)."""
    rows = sorted(rows, key=lambda r: (r["event_time"], r["event_id"]))
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


class FileWriter:
    """Writes whole objects under final names. Local: temp file + rename in
    the same folder (atomic, parent folders created). gs://: one upload with
    the official client (an object appears whole or not at all). Connection
    errors are retried with backoff, so a storage outage delays, never loses."""

    def __init__(self, project: str | None = None):
        self.project = project
        self._client = None

    def _gcs(self):
        if self._client is None:
            from pipeline.clients import storage_client

            self._client = storage_client(self.project)
        return self._client

    def write(self, path: str, data: bytes) -> None:
        if path.startswith("gs://"):
            self._write_gcs(path, data)
        else:
            self._write_local(path, data)

    def create(self, path: str, data: bytes) -> bool:
        """Create `path` only if it does not exist (atomically). Returns True
        if written or if an identical file is already there (a retry), False
        if a different file holds the name."""
        try:
            if path.startswith("gs://"):
                self._write_gcs(path, data, only_if_absent=True)
            else:
                self._write_local(path, data, only_if_absent=True)
            return True
        except FileExistsError:
            return read_file(path, self.project) == data

    def create_pane(self, name_for, data: bytes, first_index: int, limit: int = 1000) -> str:
        """Write a pane under name_for(index), starting at its own index and
        moving on while another, different file holds the name. A retried pane
        finds its identical file and stops there; a job restarted after a crash
        (whose replay re-fires panes) never overwrites what was written."""
        for index in range(first_index, first_index + limit):
            path = name_for(index)
            if self.create(path, data):
                return path
        raise RuntimeError(f"no free pane name after {limit} tries from {name_for(first_index)}")

    @staticmethod
    def _write_local(path: str, data: bytes, only_if_absent: bool = False) -> None:
        """Temp file in the same folder, then an atomic rename (replace), or a
        hard link that raises FileExistsError if the name is taken."""
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if only_if_absent:
                os.link(tmp, path)
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _write_gcs(self, path: str, data: bytes, only_if_absent: bool = False) -> None:
        from google.api_core import exceptions as gexc

        from pipeline.clients import Backoff, is_connection_error

        bucket, _, name = path[len("gs://"):].partition("/")
        backoff = Backoff(f"Cloud Storage (writing {path})")
        while True:
            try:
                blob = self._gcs().bucket(bucket).blob(name)
                blob.upload_from_string(data, content_type="application/x-ndjson", retry=None, timeout=30,
                                        if_generation_match=0 if only_if_absent else None)
                return
            except gexc.PreconditionFailed:
                raise FileExistsError(path) from None
            except (gexc.InternalServerError, gexc.BadGateway) as exc:
                backoff.wait(exc)
            except Exception as exc:  # noqa: BLE001 - only outages are retried here
                if not is_connection_error(exc):
                    raise
                backoff.wait(exc)


def list_files(prefix: str, project: str | None = None) -> list[str]:
    """Every .json file below prefix (local or gs://), for reconciliation and tests."""
    if prefix.startswith("gs://"):
        from pipeline.clients import storage_client

        bucket, _, name = prefix[len("gs://"):].partition("/")
        client = storage_client(project)
        return sorted(f"gs://{bucket}/{b.name}" for b in client.list_blobs(bucket, prefix=name.rstrip("/") + "/")
                      if b.name.endswith(".json"))
    out = []
    for root, _, names in os.walk(prefix):
        out.extend(os.path.join(root, n) for n in names if n.endswith(".json"))
    return sorted(out)


def read_file(path: str, project: str | None = None) -> bytes:
    if path.startswith("gs://"):
        from pipeline.clients import storage_client

        bucket, _, name = path[len("gs://"):].partition("/")
        return storage_client(project).bucket(bucket).blob(name).download_as_bytes()
    with open(path, "rb") as fh:
        return fh.read()
