"""Whole-object writes, listing and reading, on a local folder or gs://.

Listing and reading go through Beam's `FileSystems`, one code path for both
(on gs:// Beam builds its storage client per call and retries briefly by
itself; the job reads a folder back once per minute folder, so that cost is
not on the hot path).
Writes of a minute folder's file must create a name only if it is still free
(two writers, a retried bundle or a replay must never overwrite a file), which
`FileSystems` cannot express on gs://: they use the official client with
`if_generation_match=0`, one client per writer, reused. Local folders get a
temp file and an atomic link or rename.

The minute folders themselves (names, sequence numbers, manifests) are
`pipeline.minute_files`; names and layout come from `schemas.contract`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading

from pipeline.retry import Outages, is_outage

_log = logging.getLogger(__name__)
QUIET_RETRY_NOTICE_S = 5.0


def storage_outage(exc: BaseException) -> bool:
    """An outage of Cloud Storage, also when Beam's FileSystems wraps it, or a
    5xx (transient on Cloud Storage)."""
    from apache_beam.io.filesystem import BeamIOError
    from google.api_core import exceptions as gexc

    if isinstance(exc, BeamIOError):
        details = exc.exception_details or {}
        return any(storage_outage(e) for e in details.values() if isinstance(e, BaseException)) or \
            (not details and exc.__cause__ is not None and storage_outage(exc.__cause__))
    return is_outage(exc) or isinstance(exc, gexc.ServerError)


def list_files(prefix: str) -> list[str]:
    """Every .json file below prefix (local or gs://), manifests included,
    temporary files not. Errors are raised (callers decide to wait)."""
    from apache_beam.io.filesystems import FileSystems

    pattern = FileSystems.join(prefix.rstrip("/"), "**") if "://" in prefix else os.path.join(prefix, "**")
    found = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in found
                  if m.path.endswith(".json") and not os.path.basename(m.path).startswith(".tmp-"))


def read_file(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as fh:
        return fh.read()


class FileWriter:
    """Writes whole objects under final names; lists and reads them back.
    A storage outage is waited out (`pipeline.retry.Outages`, bounded by
    `max_wait_s`), so it delays, never loses."""

    def __init__(self, project: str | None = None, client_factory=None, max_wait_s: float | None = None):
        self.project = project
        self.client_factory = client_factory
        self.max_wait_s = max_wait_s
        self._client = None

    def _gcs(self):
        if self._client is None:
            from pipeline.clients import storage_client

            self._client = (self.client_factory or storage_client)(self.project)
        return self._client

    def _through_outages(self, what: str, call):
        return Outages(f"Cloud Storage ({what})", self.max_wait_s).call(call, predicate=storage_outage)

    def list(self, prefix: str) -> list[str]:
        if "://" not in prefix:
            return list_files(prefix)
        what = f"listing {prefix}"
        return self._through_outages(what, lambda: _said_if_slow(f"Cloud Storage ({what})", lambda: list_files(prefix)))

    def read(self, path: str) -> bytes:
        if "://" not in path:
            return read_file(path)
        what = f"reading {path}"
        return self._through_outages(what, lambda: _said_if_slow(f"Cloud Storage ({what})", lambda: read_file(path)))

    def replace(self, path: str, data: bytes) -> None:
        """Write `path`, replacing what is there (a manifest, rewritten when
        its folder gets another file)."""
        if path.startswith("gs://"):
            self._write_gcs(path, data, only_if_absent=False)
        else:
            self._write_local(path, data, only_if_absent=False)

    def delete(self, path: str) -> None:
        """Remove `path` (an erasure emptied it: python -m gdpr); gone already is fine."""
        if not path.startswith("gs://"):
            if os.path.exists(path):
                os.unlink(path)
            return
        from google.api_core import exceptions as gexc

        bucket, _, name = path[len("gs://"):].partition("/")

        def remove():
            try:
                self._gcs().bucket(bucket).blob(name).delete(retry=None, timeout=30)
            except gexc.NotFound:
                pass

        self._through_outages(f"deleting {path}", remove)

    def create(self, path: str, data: bytes) -> bool:
        """Create `path` only if it does not exist (atomically). Returns True
        if written or if an identical file is already there (a retry), False
        if a different file holds the name."""
        try:
            if path.startswith("gs://"):
                self._write_gcs(path, data)
            else:
                self._write_local(path, data)
            return True
        except FileExistsError:
            return self.read(path) == data

    @staticmethod
    def _write_local(path: str, data: bytes, only_if_absent: bool = True) -> None:
        """Temp file in the same folder, then a hard link that raises
        FileExistsError if the name is taken (or an atomic rename over it)."""
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

    def _write_gcs(self, path: str, data: bytes, only_if_absent: bool = True) -> None:
        from google.api_core import exceptions as gexc

        bucket, _, name = path[len("gs://"):].partition("/")

        def upload():
            try:
                # retry=None: outages are waited out (and logged) by Outages.
                self._gcs().bucket(bucket).blob(name).upload_from_string(
                    data, content_type="application/x-ndjson", retry=None, timeout=30,
                    if_generation_match=0 if only_if_absent else None)
            except gexc.PreconditionFailed:
                raise FileExistsError(path) from None

        self._through_outages(f"writing {path}", upload)


def _said_if_slow(what: str, call, after_s: float = QUIET_RETRY_NOTICE_S):
    """call(), saying so if it has not answered after `after_s`: Beam's
    storage client retries an unreachable service by itself, silently, for
    up to two minutes before it raises (and `Outages` takes over). Meanwhile
    the log says what the job waits for, and a local checkpoint holds still
    (`pipeline.progress.STALLS`)."""
    from pipeline.progress import STALLS

    fired = threading.Event()

    def notice():
        fired.set()
        STALLS.waiting_for(what)
        _log.warning("waiting for %s: no answer for %.0f s (Beam's storage client is retrying)", what, after_s)

    timer = threading.Timer(after_s, notice)
    timer.daemon = True
    timer.start()
    try:
        return call()
    finally:
        timer.cancel()
        if fired.is_set():
            STALLS.done(what)
            _log.warning("%s answered again", what)
