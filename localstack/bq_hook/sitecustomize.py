"""Start-up hook loaded ONLY into the BigQuery emulator's own process.

bqemulator insists on `INSTALL spatial` (a download from the DuckDB extension
repository) when it starts and refuses to start when that fails. This project
runs offline and must never reach anything but loopback, so this hook:

* turns the spatial load into a best-effort `LOAD` of an already-present
  extension, never an `INSTALL` (GEOGRAPHY is not used by this project);
* opens every DuckDB connection with extension auto-install switched off, so no
  query can trigger a download either;
* unless BQ_LOCAL_AUTO_SNAPSHOTS=on, skips the time-travel snapshot bqemulator
  takes after every write: it copies the whole table (CREATE TABLE AS SELECT *)
  on each insertAll and keeps each copy for 7 days, so an insert of 50 rows
  took 20 ms into a table of 12,000 rows and 240 ms at 100,000, and the data
  file grows with the square of the rows. The job's latency then grows with
  the run (docs/performance.md, section 2). Nothing in this project queries
  FOR SYSTEM_TIME AS OF; without snapshots such a query reads the live table.

It is put on PYTHONPATH by `localstack.services.BigQueryEmulator` and nowhere
else, so it cannot change the behaviour of the pipeline or the tests.
"""

import logging
import os

_log = logging.getLogger("bq_offline_hook")


def _patch() -> None:
    import duckdb

    real_connect = duckdb.connect

    def offline_connect(database=":memory:", read_only=False, config=None, **kwargs):
        config = dict(config or {})
        config.setdefault("autoinstall_known_extensions", False)
        return real_connect(database, read_only=read_only, config=config, **kwargs)

    duckdb.connect = offline_connect

    from bqemulator.storage import engine

    def load_spatial_if_present(self) -> None:
        try:
            self._connection.execute("LOAD spatial")
        except Exception as exc:  # the extension is simply not installed here
            _log.info("spatial extension not loaded (GEOGRAPHY unsupported): %s", exc)

    engine.DuckDBEngine._load_spatial = load_spatial_if_present

    if os.environ.get("BQ_LOCAL_AUTO_SNAPSHOTS", "off") != "on":
        from bqemulator.domain.events import TableDataChanged
        from bqemulator.versioning import snapshots

        def record_change_without_copy(self, project_id, dataset_id, table_id):
            # What record_change does, minus the copy: subscribers (materialized
            # views) still hear of the change. Callers ignore the return value.
            self._events.publish(TableDataChanged(project_id, dataset_id, table_id))
            return None

        snapshots.SnapshotManager.record_change = record_change_without_copy


try:
    _patch()
except ImportError:  # pragma: no cover - the hook is inert outside the emulator venv
    pass
