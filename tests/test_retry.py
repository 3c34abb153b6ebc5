"""The one outage wait (pipeline.retry.Outages): what is an outage, how a
single call is retried, the bound that hands the error back to the runner on
Dataflow, and that the local checkpoint is told while it waits."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc

from pipeline import progress
from pipeline.retry import Outages, is_outage


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    slept = []
    monkeypatch.setattr(Outages, "sleep", staticmethod(slept.append))
    stalls = progress._Stalls()
    monkeypatch.setattr(progress, "STALLS", stalls)
    return slept, stalls


def flaky(failures: int, error=requests.ConnectionError("connection refused")):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "answer"

    return call, calls


@pytest.mark.parametrize("error,outage", [
    (requests.ConnectionError("refused"), True), (requests.Timeout("slow"), True),
    (gexc.ServiceUnavailable("503"), True), (gexc.TooManyRequests("429"), True),
    (gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]), True),
    (gexc.Forbidden("Access denied"), False), (gexc.BadRequest("invalid row"), False), (ValueError("bug"), False),
])
def test_what_is_an_outage(error, outage):
    assert is_outage(error) is outage


def test_a_call_is_retried_through_an_outage_with_growing_delays(quick, caplog):
    slept, stalls = quick
    call, calls = flaky(4)
    caplog.set_level("INFO")
    assert Outages("BigQuery (x)").call(call) == "answer"
    assert len(calls) == 5 and len(slept) == 4
    assert "waiting for BigQuery (x) (attempt 1)" in caplog.text and "reachable again after 4 attempts" in caplog.text
    assert stalls.stalled(lag_limit_s=60) is None  # the checkpoint may move again


def test_a_refusal_is_raised_at_once_and_the_checkpoint_is_released(quick):
    slept, stalls = quick
    call, calls = flaky(1, gexc.BadRequest("invalid"))
    with pytest.raises(gexc.BadRequest):
        Outages("BigQuery (x)").call(call)
    assert len(calls) == 1 and slept == [] and stalls.stalled(lag_limit_s=60) is None


def test_past_the_bound_the_services_own_error_goes_back_to_the_runner(quick):
    slept, stalls = quick
    call, calls = flaky(10 ** 9)
    with pytest.raises(requests.ConnectionError, match="connection refused"):  # not api_core's RetryError
        Outages("Cloud Storage (x)", max_wait_s=0.05).call(call)
    assert len(calls) > 1 and stalls.stalled(lag_limit_s=60) is None


def test_while_waiting_the_checkpoint_holds_still(quick):
    slept, stalls = quick
    outages = Outages("Pub/Sub (pulling)")
    outages.wait(requests.ConnectionError("down"))
    assert stalls.stalled(lag_limit_s=60) == "waiting for Pub/Sub (pulling)"
    outages.recovered()
    assert stalls.stalled(lag_limit_s=60) is None
