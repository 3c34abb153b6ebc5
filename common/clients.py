"""The official Google clients for everything that is not the Dataflow job:
the local runner (`python -m localrun`), provisioning, the simulator, the
reconciliation, the demo, the benchmarks and the tests.

Pointed at the local stack (the emulator variables `python -m localstack up`
writes to .local/stack/env.sh are set), clients get anonymous credentials and
talk only to those loopback addresses: nothing probes the metadata server or
waits for Application Default Credentials. Otherwise (a launching machine,
production reconciliation) they use ADC as usual.

`check_services` is what every command runs first, so that a missing
environment, a stack that is down or missing credentials are said in one line
with the fix, within seconds, instead of a traceback after minutes of retries.
The job's own clients (on workers) are `pipeline/clients.py`.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

EMULATOR_VARS = {"pubsub": "PUBSUB_EMULATOR_HOST", "bigquery": "BIGQUERY_EMULATOR_HOST",
                 "storage": "STORAGE_EMULATOR_HOST"}
SERVICE_NAMES = {"pubsub": "Pub/Sub", "bigquery": "BigQuery", "storage": "Cloud Storage"}
START_STACK = "start the local stack: python -m localstack up && source .local/stack/env.sh"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SetupError(RuntimeError):
    """Something to fix before a command can run; the message says what."""


def emulated() -> bool:
    """True when any emulator variable is set: this process talks to the local stack."""
    return any(os.environ.get(v) for v in EMULATOR_VARS.values())


def emulator_address(service: str) -> tuple[str, int] | None:
    value = os.environ.get(EMULATOR_VARS[service])
    if not value:
        return None
    parts = urlsplit(value if "://" in value else f"http://{value}")
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _anonymous():
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def bigquery_client(project: str):
    from google.cloud import bigquery

    if emulator_address("bigquery"):
        # google-cloud-bigquery follows BIGQUERY_EMULATOR_HOST but still asks for ADC.
        return bigquery.Client(project=project, credentials=_anonymous())
    return bigquery.Client(project=project)


def storage_client(project: str | None):
    from google.cloud import storage

    if emulator_address("storage"):
        return storage.Client(project=project, credentials=_anonymous())
    return storage.Client(project=project)


def publisher_client(**kwargs):
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(**kwargs)  # follows PUBSUB_EMULATOR_HOST, anonymous there


def subscriber_client():
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def check_services(services=("pubsub", "bigquery", "storage"), *, require_emulators: bool = False,
                   timeout_s: float = 2.0) -> None:
    """Raise SetupError, in seconds, when the given services cannot be used:
    an emulator variable missing (with `require_emulators`) or not on
    loopback, an emulator not accepting connections, or no credentials for
    the real services."""
    missing = [EMULATOR_VARS[s] for s in services if not emulator_address(s)]
    if require_emulators and missing:
        raise SetupError(f"{', '.join(missing)} not set: this command runs against the local stack; {START_STACK}")
    for service in services:
        address = emulator_address(service)
        if address is None:
            continue
        host, port = address
        if host not in LOOPBACK:
            raise SetupError(f"{EMULATOR_VARS[service]}={os.environ[EMULATOR_VARS[service]]}: emulators must be on "
                             "127.0.0.1/localhost (this project never talks to another address)")
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            raise SetupError(f"the {SERVICE_NAMES[service]} emulator at {host}:{port} is not answering "
                             f"({exc.strerror or exc}); {START_STACK}") from None
    if any(not emulator_address(s) for s in services):
        _check_credentials()


S3_ENDPOINT_VAR = "AWS_ENDPOINT_URL_S3"  # boto3's own variable; the local stack's S3 emulator sets it


def check_s3(timeout_s: float = 2.0) -> None:
    """The S3 emulator, when AWS_ENDPOINT_URL_S3 names one, is on loopback and
    answers (real S3 needs nothing here: boto3 finds its own credentials)."""
    value = os.environ.get(S3_ENDPOINT_VAR)
    if not value:
        return
    parts = urlsplit(value)
    if parts.hostname not in LOOPBACK:
        raise SetupError(f"{S3_ENDPOINT_VAR}={value}: emulators must be on 127.0.0.1/localhost")
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s).close()
    except OSError as exc:
        raise SetupError(f"the S3 emulator at {parts.hostname}:{parts.port} is not answering "
                         f"({exc.strerror or exc}); {START_STACK}") from None


def _check_credentials() -> None:
    """Application Default Credentials exist (no network call)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise SetupError("no Google credentials: run `gcloud auth application-default login` for the real "
                         f"services, or for the local stack: {START_STACK}") from None


def use_anonymous_beam_credentials() -> None:
    """Beam's own Cloud Storage filesystem (FileSystems on gs://) looks for
    ADC with four retries (~30 s) before it connects anonymously. Against the
    emulator there is nothing to look for: say so up front. No effect when
    the storage emulator is not configured."""
    if not emulator_address("storage"):
        return
    from apache_beam.internal.gcp import auth

    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials = None
        auth._Credentials._credentials_init = True


def filesystem_options() -> None:
    """Beam's FileSystems outside a pipeline: its S3 filesystem needs pipeline
    options to build its client (empty ones: boto3 then reads the
    environment, AWS_ENDPOINT_URL_S3 on the local stack)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if FileSystems._pipeline_options is None:
        FileSystems.set_options(PipelineOptions([]))

