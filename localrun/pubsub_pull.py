"""A better local Pub/Sub read path for the DirectRunner (never used on Dataflow).

Beam's DirectRunner reads Pub/Sub with one synchronous pull of at most 10
messages per bundle (apache_beam/runners/direct/transform_evaluator.py,
`_PubSubReadEvaluator`). Every later step then works in bundles of 10: one
BigQuery insert request (~14 ms on the emulator, whatever its size) per 10
events caps a local run near 700 events/s before any other work.

`enlarge_pulls(n)` wraps the subscriber client that evaluator uses so that
each pull asks for up to `n` messages. Nothing else changes: same runner,
same watermark (the wall clock), same ack-after-pull behaviour, which is why
local crash recovery replays from the subscription (see docs/operations.md).
Dataflow uses the service's own connector and is not affected.
"""

from __future__ import annotations

import logging
import threading

_log = logging.getLogger(__name__)
_lock = threading.Lock()
# The runner asks for its client on every bundle, so a wrapper lives for one
# pull: the outage backoff is kept here, across pulls, to grow and to notice
# when Pub/Sub is back.
_state = {"max_messages": None, "original": None, "backoff": None}


class _BigPullClient:
    """Proxy of a SubscriberClient whose pull() asks for more messages and,
    when Pub/Sub is unreachable, waits with backoff and returns an empty pull
    instead of failing the whole local pipeline."""

    def __init__(self, client, max_messages: int):
        self._client = client
        self._max_messages = max_messages

    def pull(self, *args, **kwargs):
        from google.pubsub_v1.types import PullResponse

        from pipeline.retry import Outages

        kwargs["max_messages"] = max(kwargs.get("max_messages") or 0, self._max_messages)
        kwargs["timeout"] = min(kwargs.get("timeout") or 30, 10)
        # Fail fast into our own backoff, which says in the log what it waits for
        # (the client's built-in retry would wait silently).
        kwargs["retry"] = None
        try:
            response = self._client.pull(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an outage, a missing subscription while it is recreated
            outages = _state["backoff"] = _state["backoff"] or Outages("Pub/Sub (pulling)", maximum=5.0)
            outages.wait(exc)
            return PullResponse()
        if _state["backoff"] is not None:
            _state["backoff"].recovered()
            _state["backoff"] = None
        return response

    def acknowledge(self, *args, **kwargs):
        # Fail fast here too: a hung Pub/Sub must not stall the reader for the
        # client's default minute of silent retries; what is not acked comes back.
        kwargs["timeout"] = min(kwargs.get("timeout") or 30, 10)
        kwargs["retry"] = None
        try:
            return self._client.acknowledge(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the messages will be redelivered: dedup absorbs them
            _log.warning("acknowledge failed (messages will be redelivered): %s", exc)
            return None

    def __getattr__(self, name):
        return getattr(self._client, name)


def enlarge_pulls(max_messages: int) -> None:
    """Make the DirectRunner's Pub/Sub reader pull up to `max_messages`."""
    from apache_beam.runners.direct import transform_evaluator as te

    evaluator = te._PubSubReadEvaluator
    with _lock:
        if _state["original"] is None:
            _state["original"] = evaluator.__dict__["_get_subscriber_client"]
        original = _state["original"].__func__
        _state["max_messages"] = max_messages

        def _get_subscriber_client(cls, transform):
            return _BigPullClient(original(cls, transform), _state["max_messages"])

        evaluator._get_subscriber_client = classmethod(_get_subscriber_client)
    _log.info("local Pub/Sub read: up to %d messages per pull", max_messages)
