"""The local stack itself: lifecycle, clear errors, provisioning round-trip."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request

import pytest

from localstack import LocalStack, StackError
from localstack.netcut import CuttableLink
from localstack.services import pid_alive
from common.clients import bigquery_client
from schemas import table_specs
from tests.conftest import DATASET

pytestmark = pytest.mark.stack


def test_tables_report_partitioning_and_clustering(stack):
    client = bigquery_client(stack.project)
    for name, spec in table_specs().items():
        table = client.get_table(f"{stack.project}.{DATASET}.{name}")
        assert table.time_partitioning.field == spec.partition_field
        assert table.time_partitioning.type_ == "DAY"
        assert table.clustering_fields == list(spec.clustering)
    views = {t.table_id for t in client.list_tables(f"{stack.project}.{DATASET}") if t.table_type == "VIEW"}
    assert {"orders_current", "inventory_stock", "order_events_dedup", "all_events_dedup"} <= views


def test_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match=f"port 127.0.0.1:{port} is busy"):
            LocalStack(workdir=tmp_path, gcs_port=port).start()


def test_missing_jar_is_a_clear_error_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("localstack.services.PUBSUB_JAR_GLOB", str(tmp_path / "nothing-*.jar"))
    local = LocalStack(workdir=tmp_path)
    with pytest.raises(StackError, match="Pub/Sub emulator jar is missing"):
        local.start()
    assert all(s.pid is None for s in local.services)


def test_emulator_that_dies_at_start_is_reported(tmp_path, monkeypatch):
    local = LocalStack(workdir=tmp_path)
    monkeypatch.setattr(local.gcs, "command", lambda: ["false"])
    with pytest.raises(StackError, match="gcs exited with code 1 while starting"):
        local.start()
    assert all(s.pid is None for s in local.services)


def test_stop_kills_exactly_what_it_started(tmp_path):
    local = LocalStack(workdir=tmp_path)
    local.gcs.start()
    pid = local.gcs.pid
    assert pid_alive(pid)
    local.stop()
    assert not pid_alive(pid)


def test_gcs_files_are_created_once(stack):
    from datetime import datetime, timezone

    from pipeline import files
    from schemas.contract import file_path
    from tests.conftest import BUCKET

    writer = files.FileWriter(stack.project)
    minute = datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)
    name = file_path(f"gs://{BUCKET}/create-once", "inventory", minute, 1)
    first, second = b'{"event_id":"a"}\n', b'{"event_id":"b"}\n'
    assert writer.create(name, first)
    assert writer.create(name, first)        # a retry: the identical object is already there
    assert not writer.create(name, second)   # another content never replaces it (if_generation_match=0)
    assert files.read_file(name) == first and writer.read(name) == first
    assert writer.list(f"gs://{BUCKET}/create-once") == [name]


def _echo_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def echo(c=conn):
                with c:
                    while data := c.recv(1024):
                        c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_cut_link_refuses_and_resets_then_restores(tmp_path):
    """The Pub/Sub drill's network outage: while cut, nothing gets through and
    open connections fail at once; restored on the same port, traffic flows."""
    server = _echo_server()
    link = CuttableLink(server.getsockname()[1])
    link.start()
    try:
        conn = socket.create_connection(("127.0.0.1", link.port), timeout=5)
        conn.sendall(b"ping")
        assert conn.recv(16) == b"ping"
        link.cut()
        with pytest.raises(OSError):  # reset: ECONNRESET, or EOF then EPIPE
            conn.sendall(b"again")
            if not conn.recv(16):
                raise ConnectionResetError("closed by the cut")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", link.port), timeout=5)
        link.restore()
        with socket.create_connection(("127.0.0.1", link.port), timeout=5) as again:
            again.sendall(b"back")
            assert again.recv(16) == b"back"
        assert link.connections == 2
    finally:
        link.close()
        server.close()


def test_paused_service_keeps_its_state_and_answers_after_resume(tmp_path):
    local = LocalStack(workdir=tmp_path)
    local.gcs.start()
    try:
        url = f"http://127.0.0.1:{local.gcs.port}/storage/v1/b"
        create = urllib.request.Request(f"{url}?project=p", data=b'{"name": "kept-bucket"}', method="POST",
                                        headers={"Content-Type": "application/json"})
        urllib.request.urlopen(create, timeout=5).close()
        local.gcs.pause()
        with pytest.raises(OSError):  # a hung server: the client times out
            urllib.request.urlopen(url, timeout=1)
        local.gcs.resume()
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert [b["name"] for b in json.load(resp)["items"]] == ["kept-bucket"]
        local.gcs.pause()  # stop() must also end a paused service
    finally:
        pid = local.gcs.pid
        local.stop()
    assert not pid_alive(pid)


def test_inserts_do_not_copy_the_table_for_time_travel(stack):
    """bqemulator copies the whole table after every insertAll (a time-travel
    snapshot), which makes each insert cost as much as the table is big; the
    emulator's start-up hook turns that off (localstack/bq_hook). Seen from a
    client: no snapshot exists, so FOR SYSTEM_TIME AS OF reads the live table."""
    from google.cloud import bigquery

    client = bigquery_client(stack.project)
    table_id = f"{stack.project}.{DATASET}.snapshot_probe"
    client.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField("n", "INT64")]))
    try:
        assert not client.insert_rows_json(table_id, [{"n": 1}], retry=None)
        between = list(client.query("SELECT CURRENT_TIMESTAMP() AS t").result())[0].t
        assert not client.insert_rows_json(table_id, [{"n": 2}], retry=None)
        as_of = list(client.query(  # (the emulator takes no parameter there)
            f"SELECT COUNT(*) AS c FROM `{table_id}` FOR SYSTEM_TIME AS OF TIMESTAMP '{between.isoformat()}'"
        ).result())[0].c
        assert as_of == 2, "a snapshot was taken after the first insert"
    finally:
        client.delete_table(table_id, not_found_ok=True)
