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
_state = {"max_messages": None, "original": None}


class _BigPullClient:
    """Proxy of a SubscriberClient whose pull() asks for more messages."""

    def __init__(self, client, max_messages: int):
        self._client = client
        self._max_messages = max_messages

    def pull(self, *args, **kwargs):
        kwargs["max_messages"] = max(kwargs.get("max_messages") or 0, self._max_messages)
        return self._client.pull(*args, **kwargs)

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
