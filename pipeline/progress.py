"""What a local run's crash recovery must know about the job's progress.

The DirectRunner acknowledges Pub/Sub messages as soon as it pulls them, and
a local checkpoint (localrun/recovery.py) must never put its safe replay
point after a message that is not yet safely in both sinks: seeking the
subscription to a time acknowledges everything published before it. Three
facts, kept per process by the job's own steps:

* `HELD`: events a minute folder holds in state until its next file (the
  oldest publish time of those), from pipeline/minute_files.py;
* `STALLS.waiting`: a sink or Pub/Sub being waited out (pipeline/retry.py
  `Outages`): while anything is waited for, the point does not advance;
* `STALLS.lag`: how far behind publish time the parse step is (a starved or
  backlogged job): while it lags by more than half the margin, the point
  does not advance either.

The job's steps keep these facts wherever they run (a few dict updates);
only a local run reads them. On Dataflow, state is durable and nobody does.
"""

from __future__ import annotations

import threading
import time


class _Held:
    """Publish times of the events each minute folder holds but has not
    written yet, in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._since: dict = {}

    def hold(self, key, publish_epoch_s: float | None) -> None:
        if publish_epoch_s is None:
            return
        with self._lock:
            if publish_epoch_s < self._since.get(key, float("inf")):
                self._since[key] = publish_epoch_s

    def release(self, key) -> None:
        with self._lock:
            self._since.pop(key, None)

    def oldest(self) -> float | None:
        with self._lock:
            return min(self._since.values(), default=None)


class _Stalls:
    """What the job is waiting for, and how far behind it is."""

    FORGET_AFTER_S = 90.0  # a wait not renewed for this long (its retry loop ended) no longer counts

    def __init__(self, clock=time.monotonic):
        self._lock = threading.Lock()
        self._waiting: dict = {}
        self._lags: list = []
        self.clock = clock

    def waiting_for(self, what: str) -> None:
        with self._lock:
            self._waiting[what] = self.clock()

    def done(self, what: str) -> None:
        with self._lock:
            self._waiting.pop(what, None)

    def lag(self, seconds: float) -> None:
        now = self.clock()
        with self._lock:
            self._lags.append((now, seconds))
            if len(self._lags) > 512:
                del self._lags[:256]

    def stalled(self, lag_limit_s: float, window_s: float = 30.0) -> str | None:
        """Why the job is not keeping up, or None."""
        now = self.clock()
        with self._lock:
            waiting = [w for w, at in self._waiting.items() if now - at < self.FORGET_AFTER_S]
            recent = [lag for at, lag in self._lags if now - at < window_s]
        if waiting:
            return f"waiting for {waiting[0]}"
        if recent and max(recent) > lag_limit_s:
            return f"{max(recent):.0f} s behind publish time"
        return None


HELD = _Held()
STALLS = _Stalls()
