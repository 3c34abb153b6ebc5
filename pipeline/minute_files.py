"""The files of the brief's layout, one minute folder at a time.

    <prefix>/<type>/YYYY/MM/DD/HH/mm/<type>_<yyyyMMddHHmm><NNNN>.json   (+ _MANIFEST.json)

Every event lands in the folder of its event-time minute, however late it
arrives (within the parser's age limit), and nothing is ever dropped by the
runner: there are no windows here. State and timers are kept per (type,
minute, shard) in the global window:

* **on time**: an event-time timer at the minute's end. When the watermark
  passes it, the events held so far become the folder's first file, and the
  manifest says the minute is complete as of that watermark.
* **late** (the watermark has passed the minute's end, the folder's state is
  still kept): arrivals are batched for `late_firing_delay_s` of processing
  time, then written as the folder's next file.
* **far late** (state already released, or the job restarted): the folder is
  read back (its files are the durable memory: which events it holds, which
  sequence numbers are taken) and the new events become the next file.
  State is released when the watermark passes the minute's end plus
  `allowed_lateness_s` (an event-time timer, which also flushes anything
  still held, so end of input never strands data).

Which events a folder holds is known exactly (state, or the files), so an
event is written once however often it arrives: duplicates are dropped, a
copy with the same identity and another content is a conflict. File content
has no arrival-time columns and is sorted, so the same events always give the
same bytes: a replay writes nothing new. NNNN numbers the folder's files:
file k (0, 1, 2...) of shard s is k x num_shards + s + 1, so shards never
collide and one shard is 0001, 0002, ...
"""

from __future__ import annotations

import hashlib
import logging
import time
import typing
from datetime import datetime, timedelta, timezone

import apache_beam as beam
import orjson
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.timestamp import Timestamp

from pipeline.files import FileWriter
from pipeline.policy import LatenessPolicy
from pipeline.progress import HELD
from schemas.contract import (MAX_FILE_SEQ, conflict_row, file_path, format_timestamp, from_micros,
                              identity_digest, line_bytes, line_version_id, manifest_path, minute_folder,
                              parse_file_path, parse_timestamp, read_line, to_micros)

_log = logging.getLogger(__name__)
CONFLICTS = "conflicts"
MINUTE_US = 60_000_000




class FileRecord(typing.NamedTuple):
    """One file written: what the job records in `files_written`."""

    event_type: str
    minute: str
    shard: int
    num_shards: int
    seq: int
    path: str
    lines: int
    sha256: str
    timing: str          # on_time, late or far_late
    written_at: str


def _key_of(event_type: str, event_time: datetime, digest: bytes, num_shards: int, policy: LatenessPolicy):
    minute_us = policy.window_start_us(to_micros(event_time))
    shard = int.from_bytes(digest[4:8], "big") % num_shards if num_shards > 1 else 0
    return event_type, minute_us, shard


class _MinuteFilesFn(beam.DoFn):
    # (digest, content hash) of every event the folder holds or will hold.
    IDS = userstate.BagStateSpec("ids", FastPrimitivesCoder())
    # Lines waiting for the next file: (sort key, line bytes).
    PENDING = userstate.BagStateSpec("pending", FastPrimitivesCoder())
    # Small facts about the folder: see _new_meta.
    META = userstate.ReadModifyWriteStateSpec("meta", FastPrimitivesCoder())
    ON_TIME = userstate.TimerSpec("on_time", userstate.TimeDomain.WATERMARK)
    LATE_FLUSH = userstate.TimerSpec("late_flush", userstate.TimeDomain.REAL_TIME)
    RELEASE = userstate.TimerSpec("release", userstate.TimeDomain.WATERMARK)

    def __init__(self, prefix: str, num_shards: int, policy: LatenessPolicy, writer: FileWriter, clock=time.time,
                 batch: bool = False):
        self.batch = batch
        self.prefix = prefix.rstrip("/")
        self.num_shards = num_shards
        self.policy = policy
        self.writer = writer
        self.clock = clock
        self.files_written = Metrics.counter("files", "written")
        self.lines = {t: Metrics.counter("files", f"lines_{t}") for t in ("on_time", "late", "far_late", "backfill")}
        self.duplicates = Metrics.counter("files", "duplicates_dropped")
        self.conflicts = Metrics.counter("files", "conflicts")
        self.loads = Metrics.counter("files", "folder_reads")

    def setup(self):
        self._writer = self.writer

    def start_bundle(self):
        self._ids_cache: dict = {}

    # -- elements ---------------------------------------------------------------------
    def process(self, element, ids=beam.DoFn.StateParam(IDS), pending=beam.DoFn.StateParam(PENDING),
                meta_state=beam.DoFn.StateParam(META), on_time=beam.DoFn.TimerParam(ON_TIME),
                late_flush=beam.DoFn.TimerParam(LATE_FLUSH), release=beam.DoFn.TimerParam(RELEASE)):
        key, (digest, content_hash, event_id, event_time, line, publish_time) = element
        event_type, minute_us, shard = key
        meta = meta_state.read()
        if meta is None:
            meta, repaired = self._load(key, ids)  # first event of this folder in this state generation
            yield from repaired
            minute_end = Timestamp(micros=minute_us + MINUTE_US)
            release.set(minute_end + self.policy.allowed_lateness)
            if not meta["files"]:
                on_time.set(minute_end)
        known = self._known(key, ids)
        seen = known.get(digest)
        if seen == content_hash:
            self.duplicates.inc()
        elif seen is not None:
            self.conflicts.inc()
            yield beam.pvalue.TaggedOutput(CONFLICTS, conflict_row(
                stage="files", event_type=event_type, event_id=event_id, event_time=event_time,
                accepted_hash=seen, conflicting_hash=content_hash, publish_time=publish_time,
                payload=line.decode().rstrip("\n"), detected_at=datetime.now(timezone.utc)))
        else:
            known[digest] = content_hash
            ids.add((digest, content_hash))
            pending.add((event_time, event_id, line))
            HELD.hold(key, parse_timestamp(publish_time).timestamp() if publish_time else None)
            if meta["files"] and not meta["flush_set"] and not self.batch:
                late_flush.set(Timestamp(self.clock() + self.policy.late_firing_delay_s))
                meta["flush_set"] = True
        meta_state.write(meta)

    # -- timers --------------------------------------------------------------------------
    @userstate.on_timer(ON_TIME)
    def on_time_fired(self, key=beam.DoFn.KeyParam, pending=beam.DoFn.StateParam(PENDING),
                      meta_state=beam.DoFn.StateParam(META)):
        meta = meta_state.read()
        if meta is None:
            return
        yield from self._flush(key, pending, meta, "backfill" if self.batch else "on_time")
        meta["complete"] = True
        meta_state.write(meta)

    @userstate.on_timer(LATE_FLUSH)
    def late_flush_fired(self, key=beam.DoFn.KeyParam, pending=beam.DoFn.StateParam(PENDING),
                         meta_state=beam.DoFn.StateParam(META)):
        meta = meta_state.read()
        if meta is None:
            return  # released meanwhile: the release wrote what was held
        meta["flush_set"] = False
        yield from self._flush(key, pending, meta, "far_late" if meta["reloaded"] else "late")
        meta_state.write(meta)

    @userstate.on_timer(RELEASE)
    def release_fired(self, key=beam.DoFn.KeyParam, ids=beam.DoFn.StateParam(IDS),
                      pending=beam.DoFn.StateParam(PENDING), meta_state=beam.DoFn.StateParam(META),
                      late_flush=beam.DoFn.TimerParam(LATE_FLUSH)):
        meta = meta_state.read()
        if meta is not None:
            timing = "far_late" if meta["reloaded"] else ("late" if meta["files"] else "on_time")
            yield from self._flush(key, pending, meta, "backfill" if self.batch else timing)
        ids.clear()
        pending.clear()
        meta_state.clear()
        late_flush.clear()
        self._ids_cache.pop(key, None)

    # -- internals -------------------------------------------------------------------------
    def _known(self, key, ids) -> dict:
        """digest -> content hash of the folder, read once per bundle."""
        known = self._ids_cache.get(key)
        if known is None:
            known = self._ids_cache[key] = dict(ids.read())
        return known

    @staticmethod
    def _new_meta() -> dict:
        # files: [(seq, lines)] of this shard's files in the folder; next_index:
        # k of this shard's next file; reloaded: the folder had files when this
        # state generation began (a restart, or an arrival after release).
        return {"files": [], "next_index": 0, "flush_set": False, "complete": False, "reloaded": False}

    def _load(self, key, ids):
        """Read the folder back: the events its files hold and the sequence
        numbers taken (empty for a new minute: one listing). A file the
        manifest does not list (the job died between writing it and its
        manifest) is added to the manifest and reported as written now.
        Returns (meta, FileRecords of such files)."""
        event_type, minute_us, shard = key
        minute = from_micros(minute_us)
        meta = self._new_meta()
        folder = minute_folder(self.prefix, event_type, minute)
        self.loads.inc()
        known, data = {}, {}
        manifest = manifest_path(self.prefix, event_type, minute, shard, self.num_shards)
        paths = self._writer.list(folder + "/")
        for path in paths:
            parsed = parse_file_path(path)
            if parsed is None or parsed.minute != minute or parsed.event_type != event_type:
                continue
            raw_file = self._writer.read(path)
            lines = 0
            for raw in raw_file.splitlines():
                if raw.strip():
                    line = read_line(raw)
                    known[identity_digest(event_type, line_version_id(line))] = line["content_hash"]
                    lines += 1
            if (parsed.seq - 1) % self.num_shards == shard:
                meta["files"].append((parsed.seq, lines))
                meta["next_index"] = max(meta["next_index"], (parsed.seq - 1) // self.num_shards + 1)
                data[parsed.seq] = (path, lines, hashlib.sha256(raw_file).hexdigest())
        meta["files"].sort()
        if meta["files"]:
            meta["reloaded"] = meta["complete"] = True
        for item in known.items():
            ids.add(item)
        self._ids_cache[key] = known
        return meta, self._repair_manifest(event_type, minute, shard, meta, data, manifest in paths and manifest)

    def _repair_manifest(self, event_type, minute, shard, meta, data, manifest) -> list:
        listed = set()
        if manifest:
            try:
                doc = orjson.loads(self._writer.read(manifest))
                listed = {(f["name"], f["lines"]) for f in doc["files"]}
            except (ValueError, KeyError, TypeError):
                listed = set()
        names = {seq: file_path("", event_type, minute, seq).rsplit("/", 1)[1] for seq in data}
        missing = [seq for seq, (_, lines, _) in data.items() if (names[seq], lines) not in listed]
        if not missing:
            return []
        self._write_manifest(event_type, minute, shard, meta)
        _log.warning("manifest of %s repaired: it did not list %s", minute_folder(self.prefix, event_type, minute),
                     ", ".join(names[seq] for seq in missing))
        now = format_timestamp(datetime.now(timezone.utc))
        return [FileRecord(event_type=event_type, minute=format_timestamp(minute), shard=shard,
                           num_shards=self.num_shards, seq=seq, path=data[seq][0], lines=data[seq][1],
                           sha256=data[seq][2], timing="recovered", written_at=now) for seq in sorted(missing)]

    def _flush(self, key, pending, meta: dict, timing: str):
        """Write what is pending as the folder's next file, then the manifest."""
        held = sorted(pending.read())
        pending.clear()
        if not held:
            HELD.release(key)
            return
        event_type, minute_us, shard = key
        minute = from_micros(minute_us)
        data = b"".join(line for _, _, line in held)
        while True:
            seq = meta["next_index"] * self.num_shards + shard + 1
            if seq > MAX_FILE_SEQ:
                raise RuntimeError(f"minute folder {minute_folder(self.prefix, event_type, minute)} has no free "
                                   f"file number left for shard {shard} (NNNN <= {MAX_FILE_SEQ})")
            path = file_path(self.prefix, event_type, minute, seq)
            meta["next_index"] += 1
            # Created once: a retry finds its identical file; a name taken by
            # another writer (a different shard count) moves on to the next.
            if self._writer.create(path, data):
                break
        meta["files"].append((seq, len(held)))
        self._write_manifest(event_type, minute, shard, meta)
        HELD.release(key)
        self.files_written.inc()
        self.lines[timing].inc(len(held))
        _log.info("%s file %s: %d events (%s)", timing, path, len(held), event_type)
        yield FileRecord(event_type=event_type, minute=format_timestamp(minute), shard=shard,
                         num_shards=self.num_shards, seq=seq, path=path, lines=len(held),
                         sha256=hashlib.sha256(data).hexdigest(), timing=timing,
                         written_at=format_timestamp(datetime.now(timezone.utc)))

    def _write_manifest(self, event_type: str, minute: datetime, shard: int, meta: dict) -> None:
        self._writer.replace(manifest_path(self.prefix, event_type, minute, shard, self.num_shards),
                           manifest_document(event_type, minute, shard, self.num_shards, meta["files"]))


def manifest_document(event_type: str, minute: datetime, shard: int, num_shards: int,
                      files: list[tuple[int, int]]) -> bytes:
    """`_MANIFEST.json` of a minute folder (one per shard when several): the
    files the shard wrote, (seq, lines), and their line counts. It exists
    once the minute is complete (the watermark passed its end) and is
    rewritten when a later file is added, so a batch consumer knows when a
    minute is complete and how many events it holds without listing."""
    listed = [{"name": file_path("", event_type, minute, seq).rsplit("/", 1)[1], "lines": lines}
              for seq, lines in sorted(files)]
    doc = {"event_type": event_type, "minute": format_timestamp(minute), "shard": shard, "num_shards": num_shards,
           "complete": True, "files": listed, "lines": sum(f["lines"] for f in listed),
           "complete_as_of_watermark": format_timestamp(minute + timedelta(minutes=1))}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


class MinuteFiles(beam.PTransform):
    """Accepted events -> files in the brief's layout. Returns {'files':
    FileRecord per file written, 'conflicts': conflicts-table rows for copies
    the folder already holds with another content}. `clock` gives processing
    time for late batching (TestStream tests pass their own)."""

    def __init__(self, prefix: str, policy: LatenessPolicy, num_shards: int = 1, writer: FileWriter | None = None,
                 clock=time.time, batch: bool = False):
        super().__init__()
        self.batch = batch  # a backfill: no processing-time timer, every file written at the end of input
        if policy.window_s != 60:
            raise ValueError("the brief's folders are per minute: the lateness policy's window must be 60 s")
        self.prefix, self.policy, self.num_shards = prefix, policy, num_shards
        self.writer = writer or FileWriter()
        self.clock = clock

    def expand(self, accepted):
        num_shards, policy = self.num_shards, self.policy

        def keyed(acc):
            event = acc.event
            digest = identity_digest(event.event_type, event.version_id)
            publish_time = format_timestamp(acc.publish_time) if acc.publish_time else None
            return (_key_of(event.event_type, event.event_time, digest, num_shards, policy),
                    (digest, event.content_hash, event.event_id, format_timestamp(event.event_time),
                     line_bytes(event), publish_time))

        return (accepted
                | "InGlobalWindow" >> beam.WindowInto(GlobalWindows())
                | "KeyByMinuteFolder" >> beam.Map(keyed).with_output_types(
                    typing.Tuple[typing.Tuple[str, int, int], typing.Any])
                | "WriteMinuteFiles" >> beam.ParDo(_MinuteFilesFn(
                    self.prefix, self.num_shards, self.policy, self.writer, self.clock, self.batch))
                .with_outputs(CONFLICTS, main="files"))
