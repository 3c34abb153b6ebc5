"""Publish the world's events in real time, with faults, and keep the ledger."""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from schemas.contract import format_timestamp
from simulator.faults import FaultConfig, Plan, bot_plan, plan
from simulator.ledger import LedgerWriter
from simulator.world import World

_log = logging.getLogger(__name__)
DEFAULT_MIX = {"order": 0.3, "inventory": 0.3, "user_activity": 0.4}


def make_publisher(client_retry_s: float = 10.0):
    """The official publisher with batching for high rates and a short retry
    deadline: the simulator retries failed publishes itself (logged, with
    backoff), so the client's own silent retry need not wait a minute."""
    from google.api_core.retry import Retry
    from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

    from common.clients import publisher_client

    return publisher_client(
        batch_settings=BatchSettings(max_messages=500, max_latency=0.01),
        publisher_options=PublisherOptions(retry=Retry(initial=0.1, maximum=2.0, timeout=client_retry_s),
                                           timeout=client_retry_s))


@dataclass
class Stats:
    generated: int = 0
    published: int = 0
    failed: int = 0
    duplicates: int = 0
    conflicts: int = 0
    malformed: int = 0
    extra_fields: int = 0
    late: int = 0
    far_late: int = 0
    bot_bursts: int = 0
    changes: int = 0  # corrections, invalidations and deletions of events already sent
    pending: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.started)
        return (f"generated {self.generated} | published {self.published} ({self.published / elapsed:.1f}/s) | "
                f"held back {self.pending} | late {self.late} | far late {self.far_late} | "
                f"duplicates {self.duplicates} | conflicts {self.conflicts} | malformed {self.malformed} | "
                f"unknown fields {self.extra_fields} | changes {self.changes} | bot bursts {self.bot_bursts} | "
                f"failed {self.failed}")


class Simulator:
    def __init__(self, publisher, topic_path: str, ledger: LedgerWriter, run_id: str, *, rate: float = 1.0,
                 mix: dict | None = None, faults: FaultConfig | None = None, seed: int = 0,
                 time_scale: float = 1.0, strict_brief: bool = False, new_id=None):
        self.publisher = publisher
        self.topic_path = topic_path
        self.ledger = ledger
        self.run_id = run_id
        self.rate = rate
        self.mix = mix or dict(DEFAULT_MIX)
        self.faults = faults or FaultConfig()
        self.faults.validate()
        self.rng = random.Random(seed)
        self.world = World(seed=seed, time_scale=time_scale, strict_brief=strict_brief, new_id=new_id)
        self.stats = Stats()
        self._heap: list = []
        self._seq = itertools.count()
        self._futures: set = set()
        self._retries: list = []
        self._attempts: dict = {}
        self._failed_at: dict = {}  # (payload sha256, copy) -> times of attempts that failed
        self.max_publish_attempts = 12  # with capped backoff: several minutes of outage
        self.retry_base_s = 0.5
        self._lock = threading.Lock()
        self.stop_requested = threading.Event()

    # -- generation -----------------------------------------------------------------
    def _generate_one(self, now: datetime) -> list[Plan]:
        event_type = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        plans = plan(self.world.next_event(event_type, now), self.faults, self.rng,
                     explicit_id=self.world.new_event_id() if self.faults.attributes else None)
        self.stats.generated += 1
        if self.faults.bot_bursts_per_minute and self.rng.random() < self.faults.bot_bursts_per_minute / (60 * self.rate):
            plans = plans + [bot_plan(gen, self.faults, self.world.new_event_id() if self.faults.attributes else None)
                             for gen in self.world.bot_burst(now, self.faults.bot_burst_size)]
            self.stats.bot_bursts += 1
        mono = time.monotonic()
        for p in plans:
            self.stats.malformed += p.malformed
            self.stats.conflicts += p.conflict
            self.stats.extra_fields += bool(p.extra_fields)
            self.stats.duplicates += len(p.messages) - 1
            self.stats.changes += p.change_type is not None
            if not p.conflict and p.change_type is None:
                self.stats.far_late += p.far_late
                self.stats.late += (not p.far_late) and p.intended_delay_s > 0
            for copy_no, message in enumerate(p.messages):
                due = mono + message.delay_s
                heapq.heappush(self._heap, (due, next(self._seq), copy_no, p, message))
        return plans

    # -- publishing ---------------------------------------------------------------------
    def _publish(self, copy_no: int, p: Plan, message) -> None:
        publish_time = format_timestamp(datetime.now(timezone.utc))
        future = self.publisher.publish(self.topic_path, message.data, **message.attributes)
        with self._lock:
            self._futures.add(future)

        def done(fut, copy_no=copy_no, p=p, publish_time=publish_time, message=message):
            with self._lock:
                self._futures.discard(fut)
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - retried; recorded only once published
                key = (p.payload_sha256, copy_no)
                attempt = self._attempts.get(key, 0) + 1
                self._attempts[key] = attempt
                # A failed attempt may still have been published (a timeout after
                # Pub/Sub accepted it): the ledger keeps when it was tried.
                self._failed_at.setdefault(key, []).append(publish_time)
                if attempt > self.max_publish_attempts:
                    self.stats.failed += 1
                    _log.error("giving up on %s %s copy %d after %d attempts: %s", p.event_type,
                               p.event_id or p.payload_sha256[:12], copy_no, attempt, exc)
                    return
                delay = min(30.0, self.retry_base_s * 2 ** attempt)
                _log.warning("publish of %s %s copy %d failed (%s); retrying in %.1fs", p.event_type,
                             p.event_id or p.payload_sha256[:12], copy_no, type(exc).__name__, delay)
                with self._lock:
                    self._retries.append((time.monotonic() + delay, copy_no, p, message))
                return
            self.stats.published += 1
            self.ledger.record_copy(self.run_id, p, copy_no, publish_time,
                                    confirmed_time=format_timestamp(datetime.now(timezone.utc)),
                                    failed_attempt_times=self._failed_at.pop((p.payload_sha256, copy_no), []))

        future.add_done_callback(done)

    def _publish_due(self, flush_all: bool = False) -> None:
        mono = time.monotonic()
        with self._lock:
            retries, self._retries = self._retries, []
        for due, copy_no, p, message in retries:
            heapq.heappush(self._heap, (due, next(self._seq), copy_no, p, message))
        while self._heap and (flush_all or self._heap[0][0] <= mono):
            _, _, copy_no, p, message = heapq.heappop(self._heap)
            self._publish(copy_no, p, message)
        self.stats.pending = len(self._heap) + len(self._retries)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, duration_s: float | None = None, count: int | None = None, progress=None) -> Stats:
        """Generate at `rate` until duration or count, then publish what is
        still held back at its time. A stop request (Ctrl-C) ends generation
        and publishes everything held back at once: nothing generated is lost."""
        start = time.monotonic()
        tick = min(0.05, 1.0 / self.rate)
        last_report = 0.0
        generating = True
        while True:
            now_mono = time.monotonic()
            if generating:
                target = int((now_mono - start) * self.rate) + 1
                if count is not None:
                    target = min(target, count)
                now = datetime.now(timezone.utc)
                while self.stats.generated < target:
                    self._generate_one(now)
                done_by_count = count is not None and self.stats.generated >= count
                done_by_time = duration_s is not None and now_mono - start >= duration_s
                if done_by_count or done_by_time or self.stop_requested.is_set():
                    generating = False
            self._publish_due(flush_all=self.stop_requested.is_set())
            if progress and now_mono - last_report >= 1.0:
                progress(self.stats)
                last_report = now_mono
            if not generating and not self._heap:
                with self._lock:
                    idle = not self._futures and not self._retries
                if idle:
                    break
            time.sleep(tick if generating or not self._heap else min(0.2, max(0.0, self._heap[0][0] - time.monotonic())))
        self.wait_for_confirmations()
        if progress:
            progress(self.stats)
        return self.stats

    def wait_for_confirmations(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._futures:
                    return
            time.sleep(0.05)
        _log.error("%d publishes still unconfirmed after %ss", len(self._futures), timeout_s)
