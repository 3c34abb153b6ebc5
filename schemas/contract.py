"""The message contract: what a producer sends, and what the pipeline makes of it.

This module is the one place that states, for every consumer of the events
(the Beam job, the simulator, the reconciliation, the benchmarks and the
tests):

* the Pub/Sub names of the brief (seed 004) and the optional attribute hints;
* how an event's type, identity and event time are found;
* timestamps: what is accepted and how they are written;
* the canonical form of an event, the one shape its BigQuery row, its file
  line and its content hash are made from, with every value brought to what
  its BigQuery column holds;
* the file layout of the brief (``output/<type>/YYYY/MM/DD/HH/mm/
  <type>_<yyyyMMddHHmm><NNNN>.json``), with its parser.

The contract is the brief's. A producer that follows seed 004 to the letter
works: the JSON body alone is enough (``event_type`` in the body is the
discriminator), no Pub/Sub attribute is needed, and each type is validated
with exactly the brief's fields. The project's own extensions (an order's
``updated_at``, a body or attribute ``event_id``, an activity's
``metadata.product_id``) are optional. Decisions the brief leaves open are
made here and documented in README.md ("The message contract"):

* **Event time**: orders ``updated_at`` when present, else ``order_date``;
  the others ``timestamp``. RFC 3339 is accepted as RFC 3339 allows it
  (``T``/``t``/space, ``Z``/``z``/offset); a timestamp without a zone is UTC
  (seed 003: "all timestamps are in UTC"); digits beyond microseconds are
  truncated (BigQuery keeps microseconds); a leap second ``:60`` is the last
  microsecond of its minute.
* **Identity** (what dedup and conflicts are about): an explicit ``event_id``
  (body or attribute) wins; otherwise ``inventory_id`` for inventory,
  ``order_id:status`` for an order status change, ``sha256:<content hash>``
  for user activity, which has no id of its own.
* **Money**: ``price`` and ``total_amount`` are floats in the brief and
  NUMERIC in BigQuery (exact sums): they are rounded half-even to NUMERIC's 9
  decimals before anything is written, so 0.1 + 0.2 = 0.30000000000000004 is
  stored as 0.300000000 instead of being refused by the sink.
* **Integers** are BigQuery INT64: a JSON number with an integral value
  (``5.0``) is accepted; one outside the 64-bit range is refused here, by the
  parser, with a reason, never by the sink.
* **Unknown fields** (a producer ahead of the schema) are kept, not refused:
  they go to the ``extra`` JSON column and the file line at their place in the
  event. Missing required fields and values of the wrong type are refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

import orjson

from schemas import TableSpec, event_specs

# -- Pub/Sub: names from the brief, attributes are optional hints -----------------------
TOPIC = "backend-events-topic"
SUBSCRIPTION = "backend-events-topic-sub"
ALERTS_TOPIC = "backend-alerts-topic"             # the job publishes anomaly alerts here
ALERTS_SUBSCRIPTION = "backend-alerts-topic-sub"  # provisioned for consumers (and the tests)
ATTR_ALERT_ID = "alert_id"                         # on each alert message: one per (user, minute)
ALERT_THRESHOLD = 100  # seed 003: "more than 100 events from one user in one minute" (--alert_threshold)
ATTR_EVENT_TYPE = "event_type"
ATTR_EVENT_ID = "event_id"
ATTR_EVENT_TIME = "event_time"
# A historical record read by the backfill (never sent by producers): the file
# and line it came from, kept with a dead letter and used to order copies.
ATTR_SOURCE_FILE = "source_file"
ATTR_SOURCE_LINE = "source_line"
# Keys of the JSON body that are about the envelope, not the payload.
BODY_EVENT_TYPE = "event_type"
BODY_EVENT_ID = "event_id"
# A change to an event already sent (seed 002), also in the body: `change_type`
# one of CHANGE_TYPES, `changed_at` (RFC 3339, required with it: the order of
# versions) and an optional `change_reason`. See `split_change`.
BODY_CHANGE_TYPE = "change_type"
BODY_CHANGED_AT = "changed_at"
BODY_CHANGE_REASON = "change_reason"
CORRECTION, INVALIDATION, DELETION = "correction", "invalidation", "deletion"
CHANGE_TYPES = (CORRECTION, INVALIDATION, DELETION)
MAX_CHANGE_REASON = 1024

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


class ContractError(ValueError):
    """An event breaks the contract. `error_type` is stable (for counting and
    queries), `error` is for the person reading the dead-letter table."""

    def __init__(self, error_type: str, error: str):
        super().__init__(f"{error_type}: {error}")
        self.error_type = error_type
        self.error = error


# -- timestamps ---------------------------------------------------------------------------
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$", re.ASCII)


def parse_timestamp(text) -> datetime:
    """RFC 3339 -> aware UTC datetime; ValueError with the reason if not.
    No zone means UTC; sub-microsecond digits are truncated; second 60 (a
    leap second) is the last microsecond of its minute."""
    if not isinstance(text, str):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r:.60}")
    match = _RFC3339.fullmatch(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r:.60}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    second = int(second)
    if second == 60:
        second, micros = 59, 999_999
    try:
        if zone is None or zone in "Zz":
            tz = _UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            hours, mins = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or mins > 59:
                raise ValueError(f"bad UTC offset {zone!r}")
            tz = timezone(sign * timedelta(hours=hours, minutes=mins))
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), second, micros, tzinfo=tz)
        return value.astimezone(_UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid time: {text!r:.60} ({exc})") from None


def format_timestamp(value: datetime) -> str:
    """UTC RFC 3339 with microseconds, as BigQuery and the files store it.
    The year always has four digits (strftime writes 999, not 0999)."""
    value = value.astimezone(_UTC)
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%S.%f}Z"


def to_micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


# -- what BigQuery columns hold ----------------------------------------------------------
NUMERIC_SCALE = Decimal("1e-9")
_NUMERIC_CONTEXT = Context(prec=60)  # room for 29 integer digits + 9 decimals and more, so range is checked, not precision
NUMERIC_LIMIT = Decimal("1e29")           # |NUMERIC| < 10^29
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_EXACT_FLOAT_INT = 2 ** 53
# BigQuery TIMESTAMP: 0001-01-01 .. 9999-12-31, which Python's datetime also bounds.


def fit_numeric(value) -> str:
    """A number -> NUMERIC's text (9 decimals, half-even). The float's shortest
    repr is used, not its binary expansion, so 19.99 stays 19.990000000."""
    try:
        dec = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
        finite = dec.is_finite()
    except (InvalidOperation, ValueError, TypeError):
        finite = False
    if not finite:
        raise ContractError("does_not_fit", f"{value!r:.60} is not a NUMERIC value")
    fitted = dec.quantize(NUMERIC_SCALE, rounding=ROUND_HALF_EVEN, context=_NUMERIC_CONTEXT) if abs(dec) < 1 << 128 else dec
    if abs(fitted) >= NUMERIC_LIMIT:  # also 99999999999999999999999999999.9999999995, which rounds out of range
        raise ContractError("does_not_fit", f"{value!r:.60} is outside BigQuery NUMERIC's range (|x| < 1e29)")
    if not fitted:
        fitted = abs(fitted)  # NUMERIC has no negative zero
    return format(fitted, "f")


# -- the schema walk: validate and build the canonical form in one pass -------------------------
# Error kinds, most fundamental first: the dead letter's error_type is the first
# kind found; its message lists every problem.
_KINDS = ("missing_field", "schema_mismatch", "bad_timestamp", "constraint_violation", "does_not_fit")


class _Walk:
    """One event's walk: problems by kind, unknown fields by path."""

    __slots__ = ("problems", "unknown")

    def __init__(self):
        self.problems: list[tuple[str, str]] = []
        self.unknown: list[str] = []

    def fail(self, kind: str, text: str) -> None:
        self.problems.append((kind, text))


def _unwrap(avro_type):
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null"), True
    return avro_type, False


def _value(field: dict, avro_type, value, path: str, walk: _Walk):
    """Canonical form of one value, or None after recording a problem."""
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            if not isinstance(value, dict):
                walk.fail("schema_mismatch", f"{path}: expected an object, got {type(value).__name__}")
                return None, None
            return _record(avro_type["fields"], value, path + ".", walk)
        if kind == "array":
            if not isinstance(value, list):
                walk.fail("schema_mismatch", f"{path}: expected an array, got {type(value).__name__}")
                return None, None
            items, extras = [], []
            for i, item in enumerate(value):
                canonical, extra = _value(field, avro_type["items"], item, f"{path}[{i}]", walk)
                items.append(canonical)
                extras.append(extra or {})
            return items, (extras if any(extras) else None)
        if kind == "enum":
            if not isinstance(value, str) or value not in avro_type["symbols"]:
                walk.fail("schema_mismatch", f"{path}: {value!r:.60} is not one of {', '.join(avro_type['symbols'])}")
                return None, None
            return value, None
        return _value(field, kind, value, path, walk)
    if avro_type == "string":
        if not isinstance(value, str):
            walk.fail("schema_mismatch", f"{path}: expected a string, got {type(value).__name__}")
            return None, None
        if field.get("format") == "date-time":
            try:
                return format_timestamp(parse_timestamp(value)), None
            except ValueError as exc:
                walk.fail("bad_timestamp", f"{path}: {exc}")
                return None, None
        if len(value) < field.get("minLength", 0):
            walk.fail("constraint_violation", f"{path}: must not be empty")
            return None, None
        return value, None
    if avro_type in ("long", "int"):
        if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INT:
            value = int(value)  # 5.0 from a producer whose numbers are all floats
        if isinstance(value, bool) or not isinstance(value, int):
            walk.fail("schema_mismatch", f"{path}: expected an integer, got {value!r:.40}")
            return None, None
        if not INT64_MIN <= value <= INT64_MAX:
            walk.fail("does_not_fit", f"{path}: {value} is outside BigQuery INT64's range")
            return None, None
        return _bounded(field, value, path, walk), None
    if avro_type in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            walk.fail("schema_mismatch", f"{path}: expected a number, got {value!r:.40}")
            return None, None
        if isinstance(value, float) and not math.isfinite(value):
            walk.fail("schema_mismatch", f"{path}: not a finite number")
            return None, None
        value = _bounded(field, value, path, walk)
        if value is None:
            return None, None
        if field.get("bq_type") == "NUMERIC":
            try:
                return fit_numeric(value), None
            except ContractError as exc:
                walk.fail(exc.error_type, f"{path}: {exc.error}")
                return None, None
        return float(value), None
    if avro_type == "boolean":
        if not isinstance(value, bool):
            walk.fail("schema_mismatch", f"{path}: expected true or false, got {value!r:.40}")
            return None, None
        return value, None
    raise TypeError(f"unsupported schema type {avro_type!r}")  # a schema bug, caught by the tests


def _bounded(field: dict, value, path: str, walk: _Walk):
    if "minimum" in field and value < field["minimum"]:
        walk.fail("constraint_violation", f"{path}: {value} is below the minimum {field['minimum']}")
        return None
    if "maximum" in field and value > field["maximum"]:
        walk.fail("constraint_violation", f"{path}: {value} is above the maximum {field['maximum']}")
        return None
    return value


_ARRAY_INDEX = re.compile(r"\[\d+\]")


def _record(fields: list[dict], datum: dict, prefix: str, walk: _Walk):
    canonical, extra = {}, {}
    for f in fields:
        name = f["name"]
        value = datum.get(name)
        avro_type, nullable = _unwrap(f["type"])
        if value is None:
            if not nullable:
                walk.fail("missing_field", f"{prefix}{name}: missing required field"
                          + (" (null)" if name in datum else ""))
            canonical[name] = None
            continue
        canonical[name], inner_extra = _value(f, avro_type, value, prefix + name, walk)
        if inner_extra:
            extra[name] = inner_extra
    for key, value in datum.items():
        if key not in canonical:
            extra[key] = value
            walk.unknown.append(_ARRAY_INDEX.sub("[]", prefix + key))
    return canonical, extra


@dataclass(frozen=True)
class Change:
    """What a change message does to the event it names (seed 002):
    `correction` (this content supersedes the earlier versions),
    `invalidation` (the event is not valid from now on) or `deletion` (a
    tombstone: the event's entity is gone: an order with all its statuses,
    an inventory movement, a user action)."""

    kind: str
    changed_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Canonical:
    """An event in canonical form: what every sink and the content hash use."""

    event_type: str
    event_id: str
    event_time: datetime
    payload: dict               # schema fields only; NUMERIC as 9-decimal text, timestamps as UTC text
    extra: dict | None          # unknown fields at their place, None when there are none
    content_hash: str
    unknown_fields: tuple[str, ...] = ()
    explicit_id: bool = False
    change: Change | None = None  # a correction, invalidation or deletion of the event `event_id`

    @property
    def version_id(self) -> str:
        """What dedup, conflicts, insertIds and file lines are about: the event
        itself, or one change of it (see `version_id`)."""
        if self.change is None:
            return self.event_id
        return version_id(self.event_id, self.change.kind, self.change.changed_at)


def version_id(event_id: str, change_type: str | None = None, changed_at=None) -> str:
    """`event_id` for the event as first sent; `event_id@kind@changed_at` for
    a change of it (from a Canonical, a stored row or a file line)."""
    if not change_type:
        return event_id
    if not isinstance(changed_at, datetime):
        changed_at = parse_timestamp(changed_at)
    return f"{event_id}@{change_type}@{format_timestamp(changed_at)}"


def split_change(payload: dict) -> tuple[dict, Change | None]:
    """(payload without the change keys, the Change or None). A body without
    `change_type` is an event as the brief sends them: `changed_at` and
    `change_reason` there are fields the schema does not know (kept in
    extra). Raises ContractError("invalid_change")."""
    if BODY_CHANGE_TYPE not in payload:
        return payload, None
    kind = payload[BODY_CHANGE_TYPE]
    if kind not in CHANGE_TYPES:
        raise ContractError("invalid_change", f"change_type {kind!r:.60} is not one of {', '.join(CHANGE_TYPES)}")
    raw_time = payload.get(BODY_CHANGED_AT)
    if not isinstance(raw_time, str):
        raise ContractError("invalid_change", f"a {kind} needs changed_at, an RFC 3339 time (got {raw_time!r:.60})")
    try:
        changed_at = parse_timestamp(raw_time)
    except ValueError as err:
        raise ContractError("invalid_change", f"changed_at: {getattr(err, 'error', err)}") from None
    reason = payload.get(BODY_CHANGE_REASON)
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_CHANGE_REASON):
        raise ContractError("invalid_change", f"change_reason must be text of at most {MAX_CHANGE_REASON} characters")
    rest = {k: v for k, v in payload.items() if k not in (BODY_CHANGE_TYPE, BODY_CHANGED_AT, BODY_CHANGE_REASON)}
    return rest, Change(kind, changed_at, reason or None)


def entity_key(event_type: str, payload: dict, event_id: str) -> str:
    """The entity a deletion removes: the schema's `entity` fields joined by
    ':' (an order: order_id, every status of it), or the event itself
    (`"entity": "event"`: a user action)."""
    entity = event_specs()[event_type].avro.get("entity", "event")
    if entity == "event":
        return event_id
    return ":".join(str(payload[name]) for name in entity)


def content_hash(event_type: str, payload: dict, extra: dict | None) -> str:
    """Hash of the canonical content: equal for copies of one event however
    they were serialised (key order, time zone, float noise below NUMERIC's
    precision), different when any stored value differs."""
    canonical = orjson.dumps([event_type, payload, extra or None], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


_EXPLICIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", re.ASCII)


def explicit_id_problem(event_id) -> str | None:
    """Why an explicit event_id cannot be used, or None. A strict alphabet
    keeps ids safe in logs, queries and tools, and stops garbage early."""
    if not isinstance(event_id, str):
        return f"event_id must be a string, got {type(event_id).__name__}"
    if not _EXPLICIT_ID.fullmatch(event_id):
        return f"event_id {event_id!r:.80} must match {_EXPLICIT_ID.pattern}"
    return None


def natural_event_id(spec: TableSpec, payload: dict, digest: str) -> str:
    """Identity of an event without an explicit id (schemas/events/*.avsc
    'identity'): the listed fields joined by ':' (order: order_id:status, and
    status is an enum without ':', so the join is unambiguous), or the content
    hash for types that have no id of their own."""
    identity = spec.avro["identity"]
    if identity == "content":
        return f"sha256:{digest}"
    return ":".join(str(payload[name]) for name in identity)


def event_time_of(spec: TableSpec, payload: dict) -> datetime:
    """The first present field of 'event_time_fields' (already canonical)."""
    for name in spec.avro["event_time_fields"]:
        if payload.get(name) is not None:
            return parse_timestamp(payload[name])
    raise ContractError("missing_field", f"none of {', '.join(spec.avro['event_time_fields'])} is present")


def canonicalize(event_type: str, body: dict, event_id: str | None = None, change: Change | None = None) -> Canonical:
    """Validate the payload of one event (the body without its envelope keys)
    against the brief's schema and bring it to canonical form. Raises
    ContractError; an explicit `event_id` must already be checked. `change`:
    the message changes that event (a correction, invalidation or deletion
    carries the event's whole body: its identity, event time and folder)."""
    spec = event_specs()[event_type]
    walk = _Walk()
    payload, extra = _record(spec.payload_fields, body, "", walk)
    if walk.problems:
        first = min(_KINDS.index(kind) for kind, _ in walk.problems)
        raise ContractError(_KINDS[first], "; ".join(text for _, text in walk.problems)[:2000])
    extra = extra or None
    digest = content_hash(event_type, payload, extra)
    return Canonical(event_type=event_type, event_id=event_id or natural_event_id(spec, payload, digest),
                     event_time=event_time_of(spec, payload), payload=payload, extra=extra, content_hash=digest,
                     unknown_fields=tuple(walk.unknown), explicit_id=event_id is not None, change=change)


def split_body(body: dict) -> tuple[dict, object, object]:
    """(payload, body event_type, body event_id): the envelope keys of the
    JSON body are not part of the payload the schema describes."""
    if BODY_EVENT_TYPE not in body and BODY_EVENT_ID not in body:
        return body, None, None
    payload = {k: v for k, v in body.items() if k != BODY_EVENT_TYPE and k != BODY_EVENT_ID}
    return payload, body.get(BODY_EVENT_TYPE), body.get(BODY_EVENT_ID)


def user_of(event_type: str, payload: dict) -> str | None:
    """The user an event belongs to: the field its schema names `user_field`
    (user_activity.user_id, order.customer_id: one id space). None for an
    event type without one (inventory) or an empty value."""
    spec = event_specs().get(event_type)
    field = spec.user_field if spec else None
    user = payload.get(field) if field else None
    return user if isinstance(user, str) and user else None


def subject_hash(subject_id: str) -> str:
    """What the erasure list keeps of an erased data subject (a user's or a
    customer's id): its sha256, never the id."""
    return hashlib.sha256(subject_id.encode()).hexdigest()


def identity_digest(event_type: str, event_id: str) -> bytes:
    """16 bytes that stand for (type, identity) in the dedup memory: the type
    is part of the key, so an order and an inventory event never collide."""
    return hashlib.blake2b(f"{event_type}\x00{event_id}".encode(), digest_size=16).digest()


def insert_id(event_type: str, event_id: str) -> str:
    """BigQuery insertId: bounded and safe whatever the identity holds."""
    return identity_digest(event_type, event_id).hex()


# -- row and line builders ------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def numeric_paths(event_type: str) -> tuple[tuple[str, ...], ...]:
    """Paths of NUMERIC fields ("items", "price") for the file writer, which
    writes them as JSON numbers."""
    paths = []

    def walk(fields, prefix):
        for f in fields:
            avro_type, _ = _unwrap(f["type"])
            if isinstance(avro_type, dict) and avro_type["type"] == "array":
                avro_type = avro_type["items"]
            if isinstance(avro_type, dict) and avro_type["type"] == "record":
                walk(avro_type["fields"], prefix + (f["name"],))
            elif f.get("bq_type") == "NUMERIC":
                paths.append(prefix + (f["name"],))

    walk(event_specs()[event_type].payload_fields, ())
    return tuple(paths)


def _json_number(text: str) -> orjson.Fragment:
    """NUMERIC text as an exact JSON number (19.990000000 -> 19.99): a JSON
    number has no precision limit, a float would lose digits beyond 2^53."""
    return orjson.Fragment(format(Decimal(text).normalize(), "f").encode())


def _numbers_in(value, path: tuple[str, ...], convert=_json_number):
    """Copy of `value` with the NUMERIC value at `path` converted (by default
    its text to an exact JSON number; lists are walked through)."""
    if isinstance(value, list):
        return [_numbers_in(v, path, convert) for v in value]
    if not isinstance(value, dict) or not path:
        return value
    head, rest = path[0], path[1:]
    if head not in value or value[head] is None:
        return value
    out = dict(value)
    out[head] = convert(out[head]) if not rest else _numbers_in(out[head], rest, convert)
    return out


def _as_decimal(value):
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def file_line(event: Canonical) -> dict:
    """The event as one line of its minute's file: the brief's event (type in
    the body, money as exact JSON numbers) plus event_id, event_time and
    content_hash. Nothing about arrival: the same event always gives the same
    bytes, so a replay rewrites nothing. Serialise it with `line_bytes`, read
    it back with `read_line`."""
    payload = event.payload
    for path in numeric_paths(event.event_type):
        payload = _numbers_in(payload, path)
    line = {"event_type": event.event_type, "event_id": event.event_id,
            "event_time": format_timestamp(event.event_time), "content_hash": event.content_hash, **payload}
    if event.extra:
        line["extra"] = event.extra
    if event.change is not None:  # a change line: applied by (event_id, changed_at), README "Corrections"
        line[BODY_CHANGE_TYPE] = event.change.kind
        line[BODY_CHANGED_AT] = format_timestamp(event.change.changed_at)
        if event.change.reason:
            line[BODY_CHANGE_REASON] = event.change.reason
    return line


def line_version_id(line: dict) -> str:
    """The version a file line holds (`version_id`)."""
    return version_id(line["event_id"], line.get(BODY_CHANGE_TYPE), line.get(BODY_CHANGED_AT))


def line_bytes(event: Canonical) -> bytes:
    """One NDJSON line (with its newline)."""
    return orjson.dumps(file_line(event)) + b"\n"


def read_line(raw: bytes | str) -> dict:
    """A file line back as a dict, numbers with decimals as Decimal, so that
    money keeps every digit the file holds."""
    return json.loads(raw, parse_float=Decimal)


def bigquery_row(event: Canonical, publish_time: datetime | None, ingest_time: datetime, source: str) -> dict:
    """The event table row: envelope (schemas/tables/event_envelope.avsc) and
    canonical payload; every value already fits its column."""
    return {
        "event_id": event.event_id,
        "event_time": format_timestamp(event.event_time),
        "content_hash": event.content_hash,
        "extra": orjson.dumps(event.extra).decode() if event.extra else None,
        "publish_time": format_timestamp(publish_time) if publish_time else None,
        "ingest_time": format_timestamp(ingest_time),
        "source": source,
        "change_type": event.change.kind if event.change else None,
        "changed_at": format_timestamp(event.change.changed_at) if event.change else None,
        "change_reason": event.change.reason if event.change else None,
        **event.payload,
    }


def conflict_row(*, stage: str, event_type: str, event_id: str, event_time: str, accepted_hash: str,
                 conflicting_hash: str, publish_time: str | None, payload: str, detected_at: datetime) -> dict:
    """The conflicts table row (schemas/tables/conflicts.avsc) for a copy whose
    identity was accepted with another content."""
    conflict_id = hashlib.sha256(f"{event_type}\x00{event_id}\x00{conflicting_hash}".encode()).hexdigest()[:40]
    return {"conflict_id": conflict_id, "detected_at": format_timestamp(detected_at), "stage": stage,
            "event_type": event_type, "event_id": event_id, "event_time": event_time,
            "accepted_content_hash": accepted_hash, "conflicting_content_hash": conflicting_hash,
            "publish_time": publish_time, "payload": payload}


def stored_content_hash(event_type: str, stored: dict) -> str:
    """Recompute the content hash from a stored BigQuery row or file line
    (NUMERIC as Decimal or float, TIMESTAMP as datetime or text, extra as JSON
    text or object). Reconciliation compares it with the producer's: a value
    changed anywhere on the way shows up."""
    spec = event_specs()[event_type]
    names = {f["name"] for f in spec.payload_fields}
    body = {k: _plain(v) for k, v in stored.items() if k in names and v is not None}
    for path in numeric_paths(event_type):  # NUMERIC as text (an insertAll row) reads as a number
        body = _numbers_in(body, path, _as_decimal)
    extra = stored.get("extra")
    if isinstance(extra, str):
        extra = orjson.loads(extra)
    extra = _floats(extra)  # read_line gives Decimals; the job hashed the floats it parsed
    walk = _Walk()
    payload, _ = _record(spec.payload_fields, body, "", walk)
    if walk.problems:
        return "unreadable:" + "; ".join(text for _, text in walk.problems)[:200]
    return content_hash(event_type, payload, extra or None)


def _floats(value):
    """Decimals back to the floats the job parsed (a float's repr round-trips)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return value


def _plain(value):
    if isinstance(value, datetime):
        return format_timestamp(value if value.tzinfo else value.replace(tzinfo=_UTC))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- the file layout of the brief ---------------------------------------------------------------------
MANIFEST_PREFIX = "_MANIFEST"
MAX_FILE_SEQ = 9999
_PATH_RE = re.compile(
    r"(?:^|/)(?P<type>[a-z_]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<H>\d{2})/(?P<M>\d{2})/"
    r"(?P=type)_(?P<stamp>\d{12})(?P<seq>\d{4})\.json\Z", re.ASCII)


def minute_folder(prefix: str, event_type: str, minute: datetime) -> str:
    if event_type not in event_specs():  # only a validated type ever names a folder
        raise ValueError(f"refusing to build a path for unknown event type {event_type!r:.60}")
    return f"{prefix.rstrip('/')}/{event_type}/{minute.astimezone(_UTC):%Y/%m/%d/%H/%M}"


def file_path(prefix: str, event_type: str, minute: datetime, seq: int) -> str:
    """<prefix>/<type>/YYYY/MM/DD/HH/mm/<type>_<yyyyMMddHHmm><NNNN>.json, NNNN
    = seq, 1..9999, numbered within the minute folder."""
    if not 1 <= seq <= MAX_FILE_SEQ:
        raise ValueError(f"file sequence {seq} is outside 1..{MAX_FILE_SEQ}")
    folder = minute_folder(prefix, event_type, minute)
    return f"{folder}/{event_type}_{minute.astimezone(_UTC):%Y%m%d%H%M}{seq:04d}.json"


def manifest_path(prefix: str, event_type: str, minute: datetime, shard: int, num_shards: int) -> str:
    """The minute folder's manifest: `_MANIFEST.json`, or one per shard
    (`_MANIFEST-<ss>.json`) when the job writes a folder from several shards."""
    name = f"{MANIFEST_PREFIX}.json" if num_shards == 1 else f"{MANIFEST_PREFIX}-{shard:02d}.json"
    return f"{minute_folder(prefix, event_type, minute)}/{name}"


@dataclass(frozen=True)
class FilePath:
    event_type: str
    minute: datetime
    seq: int


def parse_file_path(path: str) -> FilePath | None:
    """The (type, minute, sequence) a data file's path names, or None when
    the path is not in the brief's layout (or its name disagrees with its
    folder)."""
    match = _PATH_RE.search(path)
    if not match or match["type"] not in event_specs():
        return None
    g = match.groupdict()
    if g["stamp"] != f"{g['y']}{g['m']}{g['d']}{g['H']}{g['M']}" or g["seq"] == "0000":
        return None
    try:
        minute = datetime(int(g["y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), tzinfo=_UTC)
    except ValueError:
        return None
    return FilePath(g["type"], minute, int(g["seq"]))


def minute_of(value: datetime) -> datetime:
    return value.astimezone(_UTC).replace(second=0, microsecond=0)
