"""Whole-object writes, listing and reading, on local disk or gs://.

The minute folders themselves (names, sequence numbers, manifests) are
`pipeline.minute_files`; names and layout come from `schemas.contract`.
"""

from __future__ import annotations

import os
import tempfile


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

    def list(self, prefix: str) -> list[str]:
        """Every .json file below prefix, with this writer's client; a storage
        outage is waited out."""
        if not prefix.startswith("gs://"):
            return list_files(prefix)
        return _through_outages(f"Cloud Storage (listing {prefix})",
                                lambda: list_files(prefix, self.project, client=self._gcs()))

    def read(self, path: str) -> bytes:
        if not path.startswith("gs://"):
            return read_file(path)
        return _through_outages(f"Cloud Storage (reading {path})",
                                lambda: read_file(path, self.project, client=self._gcs()))

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
            return self.read(path) == data

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

        bucket, _, name = path[len("gs://"):].partition("/")

        def upload():
            try:
                self._gcs().bucket(bucket).blob(name).upload_from_string(
                    data, content_type="application/x-ndjson", retry=None, timeout=30,
                    if_generation_match=0 if only_if_absent else None)
            except gexc.PreconditionFailed:
                raise FileExistsError(path) from None

        _through_outages(f"Cloud Storage (writing {path})", upload)


def _through_outages(what: str, call):
    """call(), retried with logged backoff while the service is unreachable or
    answers 5xx; any other error is raised. A storage outage delays, never
    loses."""
    from google.api_core import exceptions as gexc

    from pipeline.clients import Backoff, is_connection_error

    backoff = Backoff(what)
    while True:
        try:
            result = call()
            backoff.recovered()
            return result
        except (gexc.InternalServerError, gexc.BadGateway) as exc:
            backoff.wait(exc)
        except Exception as exc:  # noqa: BLE001 - only outages are retried here
            if not is_connection_error(exc):
                raise
            backoff.wait(exc)


def list_files(prefix: str, project: str | None = None, client=None) -> list[str]:
    """Every .json file below prefix (local or gs://), manifests included,
    temporary files not."""
    if prefix.startswith("gs://"):
        from pipeline.clients import storage_client

        bucket, _, name = prefix[len("gs://"):].partition("/")
        client = client or storage_client(project)
        # retry=None: an outage is waited out by the caller's logged backoff (or
        # reported at once by the reconciliation), not by minutes of silent retries.
        blobs = client.list_blobs(bucket, prefix=name.rstrip("/") + "/", retry=None, timeout=30)
        return sorted(f"gs://{bucket}/{b.name}" for b in blobs if b.name.endswith(".json"))
    out = []
    for root, _, names in os.walk(prefix):
        out.extend(os.path.join(root, n) for n in names if n.endswith(".json") and not n.startswith(".tmp-"))
    return sorted(out)


def read_file(path: str, project: str | None = None, client=None) -> bytes:
    if path.startswith("gs://"):
        from pipeline.clients import storage_client

        bucket, _, name = path[len("gs://"):].partition("/")
        return (client or storage_client(project)).bucket(bucket).blob(name).download_as_bytes(retry=None, timeout=30)
    with open(path, "rb") as fh:
        return fh.read()
