"""The job's clients: the official Google clients with Application Default
Credentials, as on Dataflow workers. One client per DoFn instance (created in
`setup`), reused for every request.

The job never decides where a service lives: the official clients follow the
standard emulator variables themselves (PUBSUB_EMULATOR_HOST,
STORAGE_EMULATOR_HOST, BIGQUERY_EMULATOR_HOST), and a local run injects
factories that also give anonymous credentials (`common/clients.py`, used by
`python -m localrun`). The factories below are the defaults the sinks get.
"""

from __future__ import annotations


def bigquery_client(project: str):
    from google.cloud import bigquery

    return bigquery.Client(project=project)


def storage_client(project: str | None):
    from google.cloud import storage

    return storage.Client(project=project)
