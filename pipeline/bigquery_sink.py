"""Streaming inserts with the official client, insertId from the event identity.

Why not Beam's WriteToBigQuery: its STREAMING_INSERTS path generates random
insertIds (uuid + counter), so BigQuery's best-effort dedup could not collapse
two copies of one event; STORAGE_WRITE_API needs a Java expansion service
(downloaded at construction, impossible offline); FILE_LOADS adds minutes of
latency. See docs/design.md "BigQuery write method".

Rows arrive already fitted to their columns (schemas.contract), so a refused
row is a surprise, not a routine. Failure handling, so that nothing is lost,
nothing crash-loops, and one bad row never holds the others back:

* the service is unreachable or overloaded (connection errors, timeouts, 429,
  502, 503, 504, 403 rateLimitExceeded / quotaExceeded): an outage; the batch
  waits with capped exponential backoff, logging what it waits for, and is
  retried whole;
* a 500 (BigQuery's backendError is transient): the batch is retried a few
  times with back-off before it is treated as refused (below): the BigQuery
  emulator answers 500 for a value it cannot take;
* the service refuses particular rows (insertErrors): those rows go to the
  dead-letter output at once with BigQuery's reason; rows only "stopped"
  because of a bad neighbour are sent again;
* the request is refused as a whole for another reason (400, or 500 from the
  emulator for a value it cannot take): the batch is split in halves, at once
  and without back-off, until the refused rows are alone; each goes to the
  dead-letter output with the reason. If a split hits an outage, the rest
  waits for the service like any outage.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from pipeline.clients import bigquery_client
from pipeline.retry import Outages, is_outage
from pipeline.validation import Rejected, dead_letter_row

_log = logging.getLogger(__name__)
DEAD_LETTER_TAG = "dead_letter"
TRANSIENT_TRIES = 3  # requests answered 500 before the batch is split to find refused rows


class _Transient(Exception):
    """A 500: retried with back-off before it is taken as a refusal."""


class _Outage(Exception):
    """The service is not answering. `remaining`: the rows still to send;
    `dead`: rows already found refused before it stopped answering."""

    def __init__(self, message: str, remaining: list, dead: list | None = None):
        super().__init__(message)
        self.remaining = remaining
        self.dead = dead or []


class InsertRows(beam.DoFn):
    """Input: (table_name, row, insert_id). Buffers per bundle and inserts in
    batches. Rows that BigQuery refuses are emitted on DEAD_LETTER_TAG as
    dead-letter rows (unless `is_dead_letter_table`, where they are logged).
    `client_factory(project)` is the official client, or a fake in tests.
    `max_wait_s`: how long one batch waits out an outage before the error
    is raised for the runner to retry the bundle (None: as long as it lasts)."""

    def __init__(self, project: str, dataset: str, batch_size: int = 500, is_dead_letter_table: bool = False,
                 client_factory=bigquery_client, request_timeout_s: float = 30.0, max_wait_s: float | None = None):
        self.project = project
        self.dataset = dataset
        self.batch_size = batch_size
        self.is_dead_letter_table = is_dead_letter_table
        self.client_factory = client_factory
        self.request_timeout_s = request_timeout_s
        self.max_wait_s = max_wait_s
        self.inserted = Metrics.counter("bigquery", "rows_inserted")
        self.refused = Metrics.counter("bigquery", "rows_refused")
        self.outage_retries = Metrics.counter("bigquery", "outage_retries")
        self.splits = Metrics.counter("bigquery", "request_splits")

    def setup(self):
        self._client = self.client_factory(self.project)

    def start_bundle(self):
        self._buffer: dict[str, list[tuple[dict, str]]] = {}
        self._count = 0

    def process(self, element):
        table, row, insert_id = element
        self._buffer.setdefault(table, []).append((row, insert_id))
        self._count += 1
        if self._count >= self.batch_size:
            yield from self._flush()

    def finish_bundle(self):
        # Outputs of finish_bundle need an explicit window; dead letters are
        # written unwindowed, so the global window is right.
        for dead in self._flush():
            yield beam.pvalue.TaggedOutput(dead.tag, GlobalWindows.windowed_value(dead.value))

    # -- internals ----------------------------------------------------------------
    def _flush(self):
        buffered, self._buffer, self._count = self._buffer, {}, 0
        for table, rows in buffered.items():
            for start in range(0, len(rows), self.batch_size):
                yield from self._insert(table, rows[start:start + self.batch_size])

    def _table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def _insert(self, table: str, rows: list[tuple[dict, str]]):
        """Insert rows, waiting out outages; yield tagged dead letters for rows
        refused for good."""
        outages = Outages(f"BigQuery (inserting into {table})", self.max_wait_s)
        pending = rows
        answered_500 = 0
        while pending:
            try:
                dead, pending = self._isolate(table, pending, split_on_500=answered_500 >= TRANSIENT_TRIES)
                outages.recovered()
            except _Outage as outage:
                dead, pending = outage.dead, outage.remaining
                self.outage_retries.inc()
                outages.wait(outage.__cause__ or outage)
            except _Transient as transient:
                dead = []
                answered_500 += 1
                outages.wait(transient.__cause__ or transient)
            for row_and_id, reason in dead:
                yield from self._refuse(table, row_and_id, reason)

    def _isolate(self, table: str, rows: list[tuple[dict, str]], split_on_500: bool = True):
        """One request for `rows`; when it is refused as a whole, the halves
        are sent separately (recursively) to find the refused rows. Returns
        (refused rows with reasons, rows to send again); raises _Outage when
        the service is unreachable (rows written so far are already
        reported, the rest is returned by the caller's retry)."""
        try:
            errors = self._client.insert_rows_json(
                self._table_id(table), [r for r, _ in rows], row_ids=[i for _, i in rows],
                retry=None, timeout=self.request_timeout_s)
        except Exception as exc:  # noqa: BLE001 - classified here
            from google.api_core import exceptions as gexc

            if is_outage(exc):
                raise _Outage(str(exc), rows) from exc
            if isinstance(exc, gexc.InternalServerError) and not split_on_500:
                raise _Transient(str(exc)) from exc
            reason = f"{type(exc).__name__}: {exc}"
            if len(rows) == 1:
                return [(rows[0], reason)], []
            self.splits.inc()
            left, right = rows[:len(rows) // 2], rows[len(rows) // 2:]
            try:
                dead_left, again_left = self._isolate(table, left)
            except _Outage as outage:
                outage.remaining = outage.remaining + right
                raise
            try:
                dead_right, again_right = self._isolate(table, right)
            except _Outage as outage:
                outage.remaining = again_left + outage.remaining
                outage.dead = dead_left + outage.dead
                raise
            return dead_left + dead_right, again_left + again_right
        refused = {e["index"]: e.get("errors", []) for e in errors}
        dead, again = [], []
        for index, row_and_id in enumerate(rows):
            reasons = refused.get(index)
            if reasons is None:
                continue
            if reasons and all(r.get("reason") == "stopped" for r in reasons):
                again.append(row_and_id)  # failed only because of a neighbour
            else:
                dead.append((row_and_id, "; ".join(f"{r.get('reason')}: {r.get('message')}" for r in reasons)
                             or "refused"))
        self.inserted.inc(len(rows) - len(refused))
        return dead, again

    def _refuse(self, table: str, row_and_id: tuple[dict, str], reason: str):
        self.refused.inc()
        row, insert_id = row_and_id
        if self.is_dead_letter_table:
            _log.error("dead-letter row refused by BigQuery (%s); row follows: %s", reason, orjson.dumps(row)[:4096])
            return
        _log.warning("BigQuery refused a row of %s (%s); it goes to the dead-letter table", table, reason[:300])
        rejection = Rejected("bigquery_insert", "bigquery_refused", f"{table}: {reason}"[:2000],
                             claimed_id=row.get("event_id"))
        dead = dead_letter_row(rejection, orjson.dumps(row), {"insert_id": insert_id, "table": table}, None,
                               datetime.now(timezone.utc))
        yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead)


class WriteToBigQueryTables(beam.PTransform):
    """(table, row, insert_id) -> BigQuery; returns the dead-letter rows of
    refused inserts. Tables must exist (provisioning creates them)."""

    def __init__(self, project: str, dataset: str, batch_size: int = 500, is_dead_letter_table: bool = False,
                 client_factory=bigquery_client, max_wait_s: float | None = None):
        super().__init__()
        self.project, self.dataset = project, dataset
        self.batch_size, self.is_dead_letter_table = batch_size, is_dead_letter_table
        self.client_factory, self.max_wait_s = client_factory, max_wait_s

    def expand(self, rows):
        results = rows | "InsertAll" >> beam.ParDo(
            InsertRows(self.project, self.dataset, self.batch_size, self.is_dead_letter_table, self.client_factory,
                       max_wait_s=self.max_wait_s)
        ).with_outputs(DEAD_LETTER_TAG, main="inserted")
        return results[DEAD_LETTER_TAG]


class BigQueryTables:
    """The job's table sink: `write(label, rows)` adds a write of
    (table, row, insert_id) rows to the graph and returns the dead-letter
    rows of what BigQuery refused. `pipeline.graph.Sinks` holds one; tests
    give the graph another object with the same method."""

    def __init__(self, project: str, dataset: str, batch_size: int = 500, client_factory=bigquery_client,
                 max_wait_s: float | None = None):
        self.project, self.dataset, self.batch_size = project, dataset, batch_size
        self.client_factory, self.max_wait_s = client_factory, max_wait_s

    def write(self, label: str, rows, dead_letter_table: bool = False):
        return rows | label >> WriteToBigQueryTables(self.project, self.dataset, self.batch_size, dead_letter_table,
                                                     self.client_factory, self.max_wait_s)
