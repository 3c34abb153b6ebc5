"""The local run's steps keep one client per thread (localrun/clients.py),
across the fresh copy of each step the DirectRunner makes per bundle."""

from __future__ import annotations

import threading

import pytest
from apache_beam.internal import pickler

from localrun import clients
from pipeline.bigquery_sink import InsertRows
from pipeline.files import FileWriter


@pytest.fixture(autouse=True)
def emulators(monkeypatch):
    # Clients are only built here, never used: nothing listens on port 9.
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    clients._client.cache_clear()
    yield
    clients._client.cache_clear()


def test_each_bundles_copy_of_a_step_gets_the_same_client():
    step = InsertRows("p", "d", client_factory=clients.bigquery_client)
    seen = set()
    for _ in range(3):  # the DirectRunner: a pickled copy and setup() per bundle
        copy = pickler.loads(pickler.dumps(step))
        copy.setup()
        seen.add(id(copy._client))
    assert len(seen) == 1
    writer = pickler.loads(pickler.dumps(FileWriter("p", clients.storage_client)))
    assert writer._gcs() is clients.storage_client("p")
    assert clients.bigquery_client("p") is not clients.bigquery_client("other")


def test_another_thread_gets_its_own_client():
    here = clients.bigquery_client("p")
    there = []
    thread = threading.Thread(target=lambda: there.append(clients.bigquery_client("p")))
    thread.start()
    thread.join()
    assert there[0] is not here and clients.bigquery_client("p") is here
