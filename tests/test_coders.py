"""The Accepted coder (pipeline.transforms.AcceptedCoder): every accepted
event crosses the dedup shuffle through it, so it must give back exactly what
it was given, for the brief's edge values and for unknown fields orjson
cannot carry (then it falls back to pickle)."""

from __future__ import annotations

import typing
from datetime import timedelta

import orjson
import pytest
from apache_beam.coders import registry

from pipeline.transforms import Accepted, AcceptedCoder
from pipeline.validation import Limits, parse_message
from tests import brief_events
from tests.helpers import BASE, inventory, order

NOW = BASE + timedelta(minutes=5)


def accepted(body, publish=True) -> Accepted:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    event = parse_message(data, None, None, now=NOW, limits=Limits(max_event_age=None))
    return Accepted(event, BASE + timedelta(seconds=3, microseconds=7) if publish else None, NOW)


def roundtrip(value):
    coder = AcceptedCoder()
    encoded = coder.encode(value)
    return encoded[:1], coder.decode(encoded)


def test_the_briefs_edge_values_come_back_exactly():
    bodies = brief_events.examples(40, seed=5, at=BASE)
    assert len(bodies) >= 120
    for i, body in enumerate(bodies):
        value = accepted(body, publish=i % 2 == 0)
        kind, back = roundtrip(value)
        assert kind == b"j" and back == value
        assert back.event.event_time.tzinfo is not None and type(back.event.unknown_fields) is tuple


@pytest.mark.parametrize("extra", [{"note": "ünïcødé ✓", "empty": ""}, {"ratio": 0.30000000000000004},
                                   {"nested": {"list": [1, None, True, "x"]}}, {"big": 2 ** 63 - 1}])
def test_unknown_fields_come_back_exactly(extra):
    value = accepted(b'{"event_type": "inventory", ' + orjson.dumps(inventory(BASE) | extra)[1:].replace(
        b'"event_type":"inventory",', b""))
    assert value.event.extra
    kind, back = roundtrip(value)
    assert kind == b"j" and back == value


def test_what_orjson_cannot_carry_falls_back_to_pickle():
    """The parser reads JSON numbers as doubles, so a canonical event never
    holds an integer beyond 64 bits; the fallback guards the coder anyway."""
    import dataclasses

    value = accepted(order(BASE))
    value = value._replace(event=dataclasses.replace(value.event, extra={"huge": 2 ** 70}))
    kind, back = roundtrip(value)
    assert kind == b"p" and back == value


def test_the_dedup_shuffle_uses_it():
    from apache_beam.typehints import native_type_compatibility

    hint = native_type_compatibility.convert_to_beam_type(typing.Tuple[int, typing.Tuple[bytes, Accepted]])
    assert "AcceptedCoder" in repr(registry.get_coder(hint))
