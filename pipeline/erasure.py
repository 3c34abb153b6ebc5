"""GDPR erasure, the job's part: what an erased data subject sends after the
erasure is not ingested again.

`python -m gdpr erase` (gdpr/__main__.py) removes a subject from the tables
and the files, and first adds the sha256 of their id to the table
`erased_subjects`. The job reads that list (every `--erasure_refresh_s`
seconds of processing time: a list of people, not an event-time decision)
and, on the event trunk right after parsing:

* drops every event whose user (the schema's `user_field`: a user's or a
  customer's id, one id space) is on the list, counting it
  (`gdpr.suppressed`): no row, no file line, no analytics;
* keeps a dead letter of such a subject (that a message was refused is not
  personal) but removes its payload and attributes.

The list holds hashes, never the ids: the job can recognise a subject
without keeping who they are. The first list is read before the first event
is decided; then a background thread re-reads it every refresh, whether
events come or not, while events go on against the list in hand: a query on
the processing thread held every event for as long as it took, once a
refresh (docs/performance.md section 2). If BigQuery cannot be read
when the list is due, the job keeps the list it has and says so (a subject
erased meanwhile is caught at the next refresh, and the erasure command
suppresses before it deletes, so nothing erased is stored again for longer
than a refresh and its query).
"""

from __future__ import annotations

import logging
import threading
import time

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics

from schemas import ERASED_SUBJECTS_TABLE, event_specs
from schemas.contract import subject_hash, user_of

_log = logging.getLogger(__name__)


_LOCK = threading.Lock()
# (project, dataset) -> _Loaded: one list per worker process, shared by the
# copies of the steps (runners copy a step per bundle).
_LOADED: dict = {}


class _Loaded:
    def __init__(self, hashes: frozenset):
        self.hashes, self.loaded_at = hashes, time.monotonic()
        self.stop = threading.Event()  # tests stop the refresher with it


class ErasedSubjects:
    """The erased subjects' hashes, from BigQuery, re-read every `refresh_s`
    by a background thread (see the module docstring). Pickled into the
    steps, so the list and its thread exist once per worker process."""

    def __init__(self, project: str, dataset: str, refresh_s: float = 60.0, client_factory=None):
        self.project, self.dataset, self.refresh_s = project, dataset, refresh_s
        self.client_factory = client_factory

    def _load(self) -> frozenset:
        from pipeline.clients import bigquery_client

        client = (self.client_factory or bigquery_client)(self.project)
        # Bounded: a hung request must not leave the list old without a word.
        rows = client.query(f"SELECT DISTINCT subject_hash FROM `{self.project}.{self.dataset}.{ERASED_SUBJECTS_TABLE}`",
                            timeout=30).result(timeout=60)
        return frozenset(row.subject_hash for row in rows)

    def hashes(self) -> frozenset:
        key = (self.project, self.dataset)
        with _LOCK:
            loaded = _LOADED.get(key)
            if loaded is None:  # the first list: no event is decided without one (an error fails the bundle)
                loaded = _LOADED[key] = _Loaded(self._load())
                _log.info("erased subjects: %d (their later events are dropped)", len(loaded.hashes))
                threading.Thread(target=self._keep_fresh, args=(loaded,), name="erased-subjects",
                                 daemon=True).start()
            return loaded.hashes

    def _keep_fresh(self, loaded: _Loaded) -> None:
        """Re-read the list every refresh_s for as long as the process lives."""
        while not loaded.stop.wait(self.refresh_s):
            try:
                hashes = self._load()
            except Exception as exc:  # noqa: BLE001 - keep the last list, try again after refresh_s
                _log.warning("the list of erased subjects could not be refreshed (%s); keeping the one of %.0f s "
                             "ago", exc, time.monotonic() - loaded.loaded_at)
                continue
            with _LOCK:
                grew = len(hashes) != len(loaded.hashes)
                loaded.hashes, loaded.loaded_at = hashes, time.monotonic()
            if grew:  # said once the new list is in use (the GDPR test waits for this line)
                _log.info("erased subjects: %d (their later events are dropped)", len(hashes))


class StaticSubjects:
    """A fixed list (tests): hashes of the erased subjects."""

    def __init__(self, hashes=()):
        self._hashes = frozenset(hashes)

    def hashes(self) -> frozenset:
        return self._hashes


class _SuppressFn(beam.DoFn):
    def __init__(self, erased):
        self.erased = erased
        self.suppressed = Metrics.counter("gdpr", "suppressed")

    def process(self, accepted):
        event = accepted.event
        user = user_of(event.event_type, event.payload)
        if user is not None and subject_hash(user) in self.erased.hashes():
            self.suppressed.inc()
            return
        yield accepted


class SuppressErased(beam.PTransform):
    """Accepted events -> those not of an erased subject."""

    def __init__(self, erased):
        super().__init__()
        self.erased = erased

    def expand(self, events):
        return events | "DropErasedSubjects" >> beam.ParDo(_SuppressFn(self.erased))


USER_FIELDS = tuple(sorted({spec.user_field for spec in event_specs().values() if spec.user_field}))
REDACTED = "(removed: the message names a data subject who was erased)"


class _RedactFn(beam.DoFn):
    def __init__(self, erased):
        self.erased = erased
        self.redacted = Metrics.counter("gdpr", "dead_letters_redacted")

    def process(self, row):
        try:
            body = orjson.loads(row.get("payload") or "")
        except (orjson.JSONDecodeError, TypeError):
            body = None
        users = [body.get(name) for name in USER_FIELDS] if isinstance(body, dict) else []
        erased = self.erased.hashes()
        if any(isinstance(u, str) and subject_hash(u) in erased for u in users):
            self.redacted.inc()
            row = dict(row, payload=REDACTED, payload_base64=None, attributes=None)
        yield row


class RedactErased(beam.PTransform):
    """Dead-letter rows -> the same, with the payload and attributes removed
    from those that name an erased subject."""

    def __init__(self, erased):
        super().__init__()
        self.erased = erased

    def expand(self, rows):
        return rows | "RemoveErasedPayloads" >> beam.ParDo(_RedactFn(self.erased))
