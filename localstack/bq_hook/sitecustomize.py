"""Start-up hook loaded ONLY into the BigQuery emulator's own process.

bqemulator insists on `INSTALL spatial` (a download from the DuckDB extension
repository) when it starts and refuses to start when that fails. This project
runs offline and must never reach anything but loopback, so this hook:

* turns the spatial load into a best-effort `LOAD` of an already-present
  extension, never an `INSTALL` (GEOGRAPHY is not used by this project);
* opens every DuckDB connection with extension auto-install switched off, so no
  query can trigger a download either.

It is put on PYTHONPATH by `localstack.services.BigQueryEmulator` and nowhere
else, so it cannot change the behaviour of the pipeline or the tests.
"""

import logging

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


try:
    _patch()
except ImportError:  # pragma: no cover - the hook is inert outside the emulator venv
    pass
