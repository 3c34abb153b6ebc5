"""The DirectRunner's local Pub/Sub read path (localrun/pubsub_pull.py): bigger
pulls, and an outage waited out with a log line instead of failing the job."""

from __future__ import annotations

import logging

import pytest
from google.api_core import exceptions as gexc

from localrun import pubsub_pull as local_read
from pipeline.retry import Outages


class _FlakyClient:
    """A subscriber client that is unreachable for the first `down` calls."""

    def __init__(self, down: int):
        self.down = down
        self.calls = []

    def _call(self, name, kwargs):
        self.calls.append((name, kwargs))
        if self.down > 0:
            self.down -= 1
            raise gexc.ServiceUnavailable("connection refused")
        return "response"

    def pull(self, **kwargs):
        return self._call("pull", kwargs)

    def acknowledge(self, **kwargs):
        return self._call("acknowledge", kwargs)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    monkeypatch.setattr(Outages, "sleep", staticmethod(lambda s: None))
    monkeypatch.setitem(local_read._state, "backoff", None)


def test_pulls_are_enlarged_and_fail_fast_into_the_logged_backoff(caplog):
    client = _FlakyClient(down=3)
    caplog.set_level(logging.WARNING)
    # The runner builds a new wrapper for every bundle: the backoff must carry over.
    results = [local_read._BigPullClient(client, 1000).pull(subscription="s", max_messages=10, timeout=30)
               for _ in range(4)]
    assert [len(r.received_messages) for r in results[:3]] == [0, 0, 0]
    assert results[3] == "response"
    for _, kwargs in client.calls:
        assert kwargs["max_messages"] == 1000 and kwargs["timeout"] == 10 and kwargs["retry"] is None
    waits = [r.message for r in caplog.records if "waiting for Pub/Sub (pulling)" in r.message]
    assert [w.split("(attempt ")[1].split(")")[0] for w in waits] == ["1", "2", "3"]
    assert "Pub/Sub (pulling) reachable again after 3 attempts" in caplog.text


def test_a_failed_acknowledge_is_logged_not_raised(caplog):
    client = _FlakyClient(down=1)
    wrapper = local_read._BigPullClient(client, 1000)
    assert wrapper.acknowledge(subscription="s", ack_ids=["a"]) is None
    assert "acknowledge failed (messages will be redelivered)" in caplog.text
    assert wrapper.acknowledge(subscription="s", ack_ids=["a"]) == "response"
    assert all(k["timeout"] == 10 and k["retry"] is None for _, k in client.calls)
