"""One way for the job to wait out an outage, for every sink and source.

Built on `google.api_core.retry`: its truncated exponential back-off (full
jitter) gives the delays, and `Retry` runs single calls. What this adds is
what the job needs around it:

* which errors are an outage (`is_outage`: the service is not there or is
  overloaded) as opposed to a refusal of this request, which is never retried
  here (a bad row goes to the dead letters, it does not wait);
* a log line saying what is waited for, and the fact that something is waited
  for (`pipeline.progress.STALLS`), so a local checkpoint does not move past
  work that is not safely stored yet;
* a bound, `max_wait_s`. A local run (DirectRunner, one worker) waits as long
  as the outage lasts, since there is nobody else to retry. On Dataflow the
  bound is finite: after it the error is raised, the runner retries the
  bundle later and a work item is not pinned by a sleeping worker for minutes.
"""

from __future__ import annotations

import logging
import time

from google.api_core import retry as api_retry

_log = logging.getLogger(__name__)
DATAFLOW_MAX_WAIT_S = 120.0  # then the runner retries the bundle (pipeline.options.EcommerceOptions.outage_wait_s)


def is_outage(exc: BaseException) -> bool:
    """True for 'the service is not there or is overloaded': connection
    errors, timeouts, 429, 502, 503, 504, 403 rate limits, and a client's
    own retry giving up. False for 'the service refused this request'."""
    import requests
    from google.api_core import exceptions as gexc

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.TooManyRequests, gexc.BadGateway,
                        gexc.GatewayTimeout, gexc.RetryError)):
        return True
    return is_rate_limit(exc)


def is_rate_limit(exc: BaseException) -> bool:
    """BigQuery says 'slow down' with 403 rateLimitExceeded / quotaExceeded."""
    from google.api_core import exceptions as gexc

    if not isinstance(exc, gexc.Forbidden):
        return False
    reasons = [e.get("reason") for e in (getattr(exc, "errors", None) or []) if isinstance(e, dict)]
    return any(r in ("rateLimitExceeded", "quotaExceeded") for r in reasons) or \
        any(r in str(exc) for r in ("rateLimitExceeded", "quotaExceeded"))


class Outages:
    """Waiting for one service, across the attempts of one piece of work.

    `wait(exc)` sleeps the next back-off delay (or raises `exc` once
    `max_wait_s` has passed since the first failure); `recovered()` says so
    once the service answers again; `call(fn)` runs a single call under
    api_core's `Retry` with the same delays, log and bound."""

    sleep = staticmethod(time.sleep)      # tests replace these two to run without waiting
    clock = staticmethod(time.monotonic)

    def __init__(self, what: str, max_wait_s: float | None = None, initial: float = 0.5, maximum: float = 30.0):
        self.what = what
        self.max_wait_s = max_wait_s
        self.initial, self.maximum = initial, maximum
        self.attempt = 0
        self._since: float | None = None
        self._delays = api_retry.exponential_sleep_generator(initial, maximum)

    def note(self, exc: BaseException) -> None:
        """Log a failed attempt and tell the local checkpoint."""
        from pipeline.progress import STALLS

        STALLS.waiting_for(self.what)
        self.attempt += 1
        if self._since is None:
            self._since = self.clock()
        log = _log.warning if self.attempt <= 3 or self.attempt % 10 == 0 else _log.info
        log("waiting for %s (attempt %d): %s: %.200s", self.what, self.attempt, type(exc).__name__, exc)

    def wait(self, exc: BaseException) -> None:
        self.note(exc)
        if self.max_wait_s is not None and self.clock() - self._since >= self.max_wait_s:
            self.gave_up()
            raise exc
        self.sleep(next(self._delays))

    def recovered(self) -> None:
        if self.attempt:
            _log.warning("%s reachable again after %d attempts", self.what, self.attempt)
        self._reset()

    def gave_up(self) -> None:
        """The bound passed: the caller raises, the runner retries the work."""
        _log.warning("gave up waiting for %s after %.0f s: the runner retries the work", self.what,
                     self.clock() - (self._since or self.clock()))
        self._reset()

    def _reset(self) -> None:
        if self.attempt:
            from pipeline.progress import STALLS

            STALLS.done(self.what)
        self.attempt, self._since = 0, None
        self._delays = api_retry.exponential_sleep_generator(self.initial, self.maximum)

    def call(self, fn, predicate=is_outage):
        """fn(), retried by api_core's `retry_target` while `predicate(error)`
        holds; anything else is raised at once. Past `max_wait_s` the
        service's own last error is raised (not api_core's RetryError)."""
        try:
            result = api_retry.retry_target(fn, predicate, self._sleeps(), timeout=self.max_wait_s,
                                            on_error=self.note, exception_factory=_raise_last)
        except BaseException:
            self.gave_up() if self.attempt else self._reset()
            raise
        self.recovered()
        return result

    def _sleeps(self):
        """api_core's delays, slept through `Outages.sleep` (retry_target is
        given zero delays so that it never sleeps by itself)."""
        for delay in self._delays:
            self.sleep(delay)
            yield 0.0


def _raise_last(errors, reason, timeout):
    """api_core's exception factory: the service's own last error, rather
    than a RetryError that hides it."""
    return errors[-1], None
