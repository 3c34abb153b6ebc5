"""Official Google clients, built one way for every caller.

When an emulator host variable is set (local runs, tests), clients get
anonymous credentials and talk only to that loopback address: nothing probes
the metadata server or waits for Application Default Credentials. Otherwise
(Dataflow workers, a launching machine) they use ADC as usual.
"""

from __future__ import annotations

import logging
import os
import random
import time

_log = logging.getLogger(__name__)


def _anonymous():
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def bigquery_client(project: str):
    from google.cloud import bigquery

    host = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if host:
        from google.api_core.client_options import ClientOptions

        return bigquery.Client(project=project, credentials=_anonymous(),
                               client_options=ClientOptions(api_endpoint=host))
    return bigquery.Client(project=project)


def storage_client(project: str):
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project, credentials=_anonymous())
    return storage.Client(project=project)


def publisher_client(**kwargs):
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(**kwargs)


def subscriber_client():
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def is_connection_error(exc: BaseException) -> bool:
    """True for 'the service is not there' (an outage), as opposed to 'the
    service refused this request'."""
    import requests
    from google.api_core import exceptions as gexc

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.TooManyRequests, gexc.BadGateway,
                        gexc.GatewayTimeout)):
        return True
    return isinstance(exc, gexc.RetryError)


class Backoff:
    """Exponential backoff with jitter, capped; logs what it waits for."""

    def __init__(self, what: str, first: float = 0.5, cap: float = 30.0):
        self.what = what
        self.first = first
        self.cap = cap
        self.attempt = 0

    def recovered(self) -> None:
        """Say so once the service answers again after waiting for it."""
        if self.attempt:
            from pipeline.progress import STALLS

            STALLS.done(self.what)
            _log.warning("%s reachable again after %d attempts", self.what, self.attempt)
            self.attempt = 0

    def wait(self, exc: BaseException) -> None:
        from pipeline.progress import STALLS

        STALLS.waiting_for(self.what)  # a local checkpoint does not advance meanwhile
        delay = min(self.cap, self.first * (2 ** self.attempt)) * (0.5 + random.random() / 2)
        self.attempt += 1
        log = _log.warning if self.attempt <= 3 or self.attempt % 10 == 0 else _log.info
        log("waiting for %s (attempt %d, retrying in %.1fs): %s: %.200s",
            self.what, self.attempt, delay, type(exc).__name__, exc)
        time.sleep(delay)
