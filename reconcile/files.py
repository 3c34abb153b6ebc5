"""What the files in the brief's layout hold, read back with the contract.

`scan` reads every file under an output prefix (or only the minute folders
of a time range) and records, for each event line, where it is, and the
content hash recomputed from the line itself. Paths outside the layout and
manifests that disagree with their folder are collected too: the checks in
`reconcile.checks` and `reconcile.no_ledger` turn all of this into failures.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from common.clients import use_anonymous_beam_credentials
from pipeline.files import list_files, read_file
from schemas import event_specs
from schemas.contract import MANIFEST_PREFIX, line_version_id, parse_file_path, read_line, stored_content_hash


@dataclass
class Location:
    event_type: str
    minute: datetime
    path: str
    content_hash: str  # recomputed from the line's values


@dataclass
class FileInventory:
    # (event_type, version) -> every place the version was found (schemas.contract.version_id: the event as
    # first sent is its event_id; a change of it is event_id@kind@changed_at)
    locations: dict = field(default_factory=lambda: defaultdict(list))
    per_minute: dict = field(default_factory=lambda: defaultdict(set))  # (minute, type) -> {event_id}
    files: int = 0
    lines: int = 0
    bad_paths: list = field(default_factory=list)
    manifest_problems: list = field(default_factory=list)
    manifest_lines: dict = field(default_factory=lambda: defaultdict(int))  # (minute, type) -> lines listed


def _prefixes(prefix: str, start: datetime | None, end: datetime | None) -> list[str]:
    """The folders to list: everything, or one hour folder per type and hour
    of the range (listing a whole bucket for one day would not scale)."""
    prefix = prefix.rstrip("/")
    if start is None or end is None or end - start > timedelta(days=3):
        return [prefix + "/"]
    out = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        out.extend(f"{prefix}/{event_type}/{hour:%Y/%m/%d/%H}/" for event_type in event_specs())
        hour += timedelta(hours=1)
    return out


def scan(prefix: str, project: str | None = None, start: datetime | None = None,
         end: datetime | None = None, read_data: bool = True) -> FileInventory:
    """`read_data=False` lists the data files and reads only the manifests
    (per-minute counts at the cost of one small read per folder)."""
    use_anonymous_beam_credentials()  # gs:// on the local stack: no 30 s search for credentials
    inv = FileInventory()
    folders: dict = defaultdict(lambda: {"data": {}, "manifests": []})
    for listing in _prefixes(prefix, start, end):
        for path in list_files(listing):
            name = path.rsplit("/", 1)[1]
            folder = path.rsplit("/", 1)[0]
            if name.startswith(MANIFEST_PREFIX):
                folders[folder]["manifests"].append(path)
                continue
            parsed = parse_file_path(path)
            if parsed is None:
                inv.bad_paths.append(path)
                continue
            if (start and parsed.minute < start.replace(second=0, microsecond=0)) or (end and parsed.minute >= end):
                continue
            inv.files += 1
            if not read_data:
                folders[folder]["data"][name] = None  # known from the manifest
                continue
            count = 0
            for raw in read_file(path).splitlines():
                if not raw.strip():
                    continue
                count += 1
                try:
                    line = read_line(raw)
                    event_type, event_id = line["event_type"], line_version_id(line)
                    digest = stored_content_hash(event_type, line)
                except (ValueError, KeyError, TypeError) as exc:
                    inv.bad_paths.append(f"{path}: unreadable line ({type(exc).__name__}: {exc})"[:300])
                    continue
                inv.locations[(event_type, event_id)].append(Location(event_type, parsed.minute, path, digest))
                inv.per_minute[(parsed.minute, parsed.event_type)].add((event_type, event_id))
            inv.lines += count
            folders[folder]["data"][name] = count
    for folder, content in folders.items():
        _check_manifests(folder, content, inv, project)
    return inv


def _check_manifests(folder: str, content: dict, inv: FileInventory, project: str | None) -> None:
    """A folder with data files has its manifest(s), and together they list
    exactly its files with their line counts."""
    if not content["data"]:
        return
    if not content["manifests"]:
        inv.manifest_problems.append(f"{folder}: no {MANIFEST_PREFIX}*.json")
        return
    listed = {}
    for path in content["manifests"]:
        try:
            doc = orjson.loads(read_file(path))
            listed.update({f["name"]: f["lines"] for f in doc["files"]})
            minute = datetime.fromisoformat(doc["minute"].replace("Z", "+00:00"))
            inv.manifest_lines[(minute, doc["event_type"])] += doc["lines"]
        except (ValueError, KeyError, TypeError) as exc:
            inv.manifest_problems.append(f"{path}: unreadable ({exc})")
    if any(count is None for count in content["data"].values()):  # not read: trust the manifest's counts
        content["data"] = {name: listed.get(name, -1) for name in content["data"]}
    if listed != content["data"]:
        missing = sorted(set(content["data"]) - set(listed))
        extra = sorted(set(listed) - set(content["data"]))
        wrong = sorted(n for n in set(listed) & set(content["data"]) if listed[n] != content["data"][n])
        inv.manifest_problems.append(f"{folder}: manifest disagrees (not listed {missing}, listed but absent "
                                     f"{extra}, wrong line counts {wrong})")
