"""Crash recovery for local (DirectRunner) runs: replay from the subscription.

The DirectRunner acks Pub/Sub messages right after pulling them, before they
are processed, and keeps all state in memory: a crash (SIGKILL, OOM, power)
loses whatever was in flight. The subscription is provisioned with
`retain_acked_messages`, so acked messages stay available for seeking.

* While a job runs, `Checkpointer` writes `--checkpoint_file` every few
  seconds: `safe_replay_from` = now - `--replay_margin_s`, never later than
  the oldest event still waiting in a minute folder's state for its file,
  and frozen while a sink or Pub/Sub is waited out or the job lags by more
  than half the margin (`pipeline.progress`, which the job's steps keep). Everything published before
  that point was pulled long enough ago to be in BigQuery and in its file.
* On restart with `--replay_from=auto`, the job seeks the subscription to the
  checkpoint's `safe_replay_from` (or `--replay_from=<RFC 3339 time>`) before
  it starts: every message published after it is delivered again. The replay
  is absorbed exactly: the restarted job reads which events BigQuery already
  holds from the replayed period (`stored_since`) and sends those to their
  minute folders only, and each folder is read back before anything is added
  to it, so nothing is written twice (a different content under a stored
  identity is recorded as a conflict).

On Dataflow, use drain/update and Pub/Sub snapshots instead (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

_log = logging.getLogger(__name__)


class Checkpointer:
    """Writes the safe replay point of the running job.

    Until the job has run for one margin, what it replayed (or was handed at
    start) may still be in flight, so the point stays at `initial`: the time
    its own replay began, or its start minus the margin. After that,
    everything published before now - margin has been pulled and processed
    (assuming the job keeps up within the margin)."""

    def __init__(self, path: str, margin_s: int, initial: datetime | None = None, every_s: float = 5.0):
        self.path = Path(path)
        self.margin = timedelta(seconds=margin_s)
        self.every_s = every_s
        self.started = datetime.now(timezone.utc)
        self.initial = min(initial or self.started - self.margin, self.started - self.margin)
        self._last: datetime | None = None
        self._frozen: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkpointer", daemon=True)

    def start(self) -> "Checkpointer":
        self.write()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def safe_point(self, now: datetime) -> datetime:
        from pipeline.progress import HELD, STALLS

        point = self.initial if now - self.started < self.margin else max(self.initial, now - self.margin)
        # Never past an event that was acknowledged but is still waiting for its
        # minute folder's file (up to a minute, longer when the job lags).
        oldest = HELD.oldest()
        if oldest is not None:
            point = min(point, datetime.fromtimestamp(oldest - 1, timezone.utc))
        # While a sink or Pub/Sub is waited out, or the job lags, what was pulled
        # may not be anywhere yet: the point stays where it was.
        stalled = STALLS.stalled(lag_limit_s=self.margin.total_seconds() / 2)
        if stalled and self._last is not None and point > self._last:
            if self._frozen != stalled:
                _log.warning("checkpoint held at %s: %s", self._last.isoformat(), stalled)
            point = self._last
        self._frozen = stalled
        self._last = point
        return point

    def write(self) -> None:
        now = datetime.now(timezone.utc)
        doc = {"safe_replay_from": self.safe_point(now).isoformat(), "written_at": now.isoformat(),
               "pid": os.getpid(), "job_started": self.started.isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.write()
            except OSError as exc:  # a full disk must not stop the job
                _log.warning("checkpoint not written: %s", exc)


def read_checkpoint(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def resolve_replay_from(replay_from: str, checkpoint_file: str | None) -> datetime | None:
    """The time to seek to, from --replay_from ('auto', a time, or '')."""
    if not replay_from:
        return None
    if replay_from == "auto":
        checkpoint = read_checkpoint(checkpoint_file) if checkpoint_file else None
        if not checkpoint:
            _log.info("replay_from=auto: no checkpoint at %s, nothing to replay", checkpoint_file)
            return None
        return datetime.fromisoformat(checkpoint["safe_replay_from"])
    from schemas.contract import parse_timestamp

    return parse_timestamp(replay_from)


def stored_since(client, project: str, dataset: str, since: datetime) -> dict:
    """digest -> content hash of every event BigQuery holds that the job
    ingested since `since` (a minute of margin for clocks): what a replay from
    `since` brings again. The accepted copy of each is the first ingested."""
    from google.cloud import bigquery

    from schemas import event_specs
    from schemas.contract import identity_digest, version_id

    seen = {}
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", since - timedelta(minutes=1))])
    for event_type, spec in event_specs().items():
        sql = (f"SELECT event_id, change_type, changed_at, content_hash FROM `{project}.{dataset}.{spec.name}` "
               "WHERE ingest_time >= @since "
               "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, change_type, changed_at ORDER BY ingest_time) = 1")
        for row in client.query(sql, job_config=config).result(timeout=120):
            key = version_id(row.event_id, row.change_type, row.changed_at)  # each version of an event
            seen[identity_digest(event_type, key)] = row.content_hash
    _log.info("replay: %d events already stored since %s will not be written again", len(seen), since.isoformat())
    return seen


def seek_subscription(subscription: str, when: datetime) -> None:
    from google.protobuf import timestamp_pb2

    from common.clients import subscriber_client

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when.astimezone(timezone.utc).replace(tzinfo=None))
    client = subscriber_client()
    try:
        client.seek(request={"subscription": subscription, "time": stamp}, timeout=30)
    finally:
        client.close()
    _log.warning("replaying %s from %s (messages published since then are delivered again)",
                 subscription, when.isoformat())
    time.sleep(0.5)  # let the emulator/service apply the seek before the first pull
