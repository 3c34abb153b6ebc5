"""Events made from the brief's own text, not from our schemas.

`tests/brief/seed_004_event_schemas.md` holds seed 004's three JSON schema
blocks verbatim. This module reads them and builds concrete events by
following each field's description ("uuid", "timestamp", "float",
"integer(-100 to 100)", "enum(...)"), drawing values at the edges of each
type: floats with many decimals, huge integers, unicode and empty strings,
every RFC 3339 spelling. A producer that follows the brief to the letter
sends exactly such messages: the JSON body alone, no Pub/Sub attributes.
"""

from __future__ import annotations

import functools
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

BRIEF = Path(__file__).resolve().parent / "brief" / "seed_004_event_schemas.md"
BASE = datetime(2025, 2, 8, 13, 9, 0, tzinfo=timezone.utc)  # the brief's own example minute

STRINGS = ["Berlin", "", "Zoë's Café", "東京都", "🙂 emoji", "O'Brien; DROP TABLE x", "line\nbreak", "tab\there",
           "a" * 300, "\u0000nul", "Ünïcödé " * 20, "x"]
FLOATS = [0.1 + 0.2, 19.99, 0.0, 1e-12, 123456.78901234567, 0.30000000000000004, 7.123456789012345, 1e20,
          -0.0, 99.995, 2.675, 1 / 3, 5, 1000000]
INTEGERS = [0, 1, 7, -5, 2 ** 53 + 1, 2 ** 62, -(2 ** 63), 2 ** 63 - 1, 123456789]


@functools.lru_cache(maxsize=None)
def templates() -> dict[str, dict]:
    """event_type -> the brief's JSON template."""
    blocks = re.findall(r"```json\n(.*?)```", BRIEF.read_text(), re.S)
    out = {}
    for block in blocks:
        template = orjson.loads(block)
        out[template["event_type"]] = template
    return out


def field_tree(template) -> dict:
    """Field names of a template as a nested dict (arrays: their item's)."""
    if isinstance(template, list):
        return field_tree(template[0])
    if isinstance(template, dict):
        return {k: field_tree(v) for k, v in template.items()}
    return {}


def timestamp(rng: random.Random, at: datetime) -> str:
    """`at` in one of the spellings RFC 3339 allows (and a zone-less one,
    which the contract reads as UTC)."""
    spelling = rng.randrange(7)
    if spelling == 0:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spelling == 1:
        return at.strftime("%Y-%m-%dt%H:%M:%S.%fz")
    if spelling == 2:
        return (at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    if spelling == 3:
        return (at - timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S-05:30")
    if spelling == 4:
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z"  # nanoseconds
    if spelling == 5:
        return at.strftime("%Y-%m-%dT%H:%M:%S")  # no zone: UTC
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def value(description, rng: random.Random, at: datetime):
    if isinstance(description, list):
        return [value(description[0], rng, at) for _ in range(rng.randint(0, 3))]
    if isinstance(description, dict):
        return {k: value(v, rng, at) for k, v in description.items()}
    if description == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if description == "timestamp":
        return timestamp(rng, at)
    if description == "string":
        return rng.choice(STRINGS)
    if description == "float":
        return rng.choice(FLOATS) if rng.random() < 0.6 else rng.uniform(0, 1000) * rng.choice([1, 0.85, 1 / 7])
    if description == "integer":
        return rng.choice(INTEGERS)
    match = re.fullmatch(r"integer\((-?\d+) to (-?\d+)\)", description)
    if match:
        low, high = int(match[1]), int(match[2])
        return rng.choice([low, high, 0, rng.randint(low, high)])
    match = re.fullmatch(r"enum\((.*)\)", description)
    if match:
        return rng.choice([s.strip() for s in match[1].split(",")])
    return description  # a literal, such as the event_type


def event(event_type: str, rng: random.Random, at: datetime = BASE) -> dict:
    """One event of the brief's shape, event_type inside, nothing else."""
    return value(templates()[event_type], rng, at)


def examples(n_per_type: int, seed: int = 4, at: datetime = BASE) -> list[dict]:
    rng = random.Random(seed)
    return [event(t, rng, at + timedelta(seconds=rng.uniform(0, 59)))
            for t in sorted(templates()) for _ in range(n_per_type)]
