"""Streaming inserts with the official client, insertId = event_id.

Why not Beam's WriteToBigQuery: its STREAMING_INSERTS path generates random
insertIds (uuid + counter), so BigQuery's best-effort dedup could not collapse
two copies of one event; STORAGE_WRITE_API needs a Java expansion service
(downloaded at construction, impossible offline); FILE_LOADS adds minutes of
latency. See docs/design.md "BigQuery write method".

Failure handling, so that nothing is lost and nothing crash-loops:
* the service is unreachable (connection refused, timeouts, 503, 429): retry
  the batch forever with capped exponential backoff, logging what it waits for;
* the service refuses particular rows (insertErrors): those rows go to the
  dead-letter output with BigQuery's reason; rows that were only "stopped"
  because of a bad neighbour are retried;
* the whole request fails with another error (400, 500 from the emulator for a
  bad value): retry a few times, then split the batch in halves to isolate the
  bad row; a single row that still fails goes to the dead-letter output.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from pipeline.clients import Backoff, bigquery_client, is_connection_error
from pipeline.validation import Rejected, dead_letter_row

_log = logging.getLogger(__name__)
DEAD_LETTER_TAG = "dead_letter"
_PER_REQUEST_TRIES = 3


class InsertRows(beam.DoFn):
    """Input: (table_name, row, insert_id). Buffers per bundle and inserts in
    batches. Rows that BigQuery refuses are emitted on DEAD_LETTER_TAG as
    dead-letter rows (unless `is_dead_letter_table`, where they are logged)."""

    def __init__(self, project: str, dataset: str, batch_size: int = 500, is_dead_letter_table: bool = False):
        self.project = project
        self.dataset = dataset
        self.batch_size = batch_size
        self.is_dead_letter_table = is_dead_letter_table
        self.inserted = Metrics.counter("bigquery", "rows_inserted")
        self.refused = Metrics.counter("bigquery", "rows_refused")
        self.outage_retries = Metrics.counter("bigquery", "outage_retries")

    def setup(self):
        self._client = bigquery_client(self.project)

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
        """Insert rows; yield tagged dead letters for rows refused for good."""
        pending = rows
        request_failures = 0
        backoff = Backoff(f"BigQuery (inserting into {table})")
        while pending:
            try:
                errors = self._client.insert_rows_json(
                    self._table_id(table), [r for r, _ in pending], row_ids=[i for _, i in pending],
                    retry=None, timeout=30)
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_connection_error(exc):
                    self.outage_retries.inc()
                    backoff.wait(exc)
                    continue
                request_failures += 1
                if request_failures < _PER_REQUEST_TRIES:
                    backoff.wait(exc)
                    continue
                if len(pending) > 1:  # isolate the row the service refuses
                    mid = len(pending) // 2
                    yield from self._insert(table, pending[:mid])
                    yield from self._insert(table, pending[mid:])
                    return
                yield from self._refuse(table, pending[0], f"{type(exc).__name__}: {exc}")
                return
            refused = {e["index"]: e.get("errors", []) for e in errors}
            retry = []
            for index, (row, insert_id) in enumerate(pending):
                if index not in refused:
                    continue
                reasons = refused[index]
                if reasons and all(r.get("reason") == "stopped" for r in reasons):
                    retry.append((row, insert_id))  # failed only because of a neighbour
                else:
                    yield from self._refuse(table, (row, insert_id), "; ".join(
                        f"{r.get('reason')}: {r.get('message')}" for r in reasons) or "refused")
            self.inserted.inc(len(pending) - len(refused))
            pending = retry

    def _refuse(self, table: str, row_and_id: tuple[dict, str], reason: str):
        self.refused.inc()
        row, insert_id = row_and_id
        if self.is_dead_letter_table:
            _log.error("dead-letter row refused by BigQuery (%s); row follows: %s", reason, orjson.dumps(row)[:4096])
            return
        rejection = Rejected("bigquery_insert", "bigquery_refused", f"{table}: {reason}"[:2000])
        dead = dead_letter_row(rejection, orjson.dumps(row), {"event_id": insert_id, "table": table}, None,
                               datetime.now(timezone.utc))
        yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead)


class WriteToBigQueryTables(beam.PTransform):
    """(table, row, insert_id) -> BigQuery; returns the dead-letter rows of
    refused inserts. Tables must exist (provisioning creates them)."""

    def __init__(self, project: str, dataset: str, batch_size: int = 500, is_dead_letter_table: bool = False):
        super().__init__()
        self.project, self.dataset = project, dataset
        self.batch_size, self.is_dead_letter_table = batch_size, is_dead_letter_table

    def expand(self, rows):
        results = rows | "InsertAll" >> beam.ParDo(
            InsertRows(self.project, self.dataset, self.batch_size, self.is_dead_letter_table)
        ).with_outputs(DEAD_LETTER_TAG, main="inserted")
        return results[DEAD_LETTER_TAG]
