"""Schema evolution without loss: the compatibility gate, and a real
evolution on the BigQuery emulator where old and new messages both land."""

from __future__ import annotations

import copy
from datetime import timedelta

import orjson
import pytest

from common.clients import bigquery_client
from provision import ensure_dataset, ensure_tables_api, update_table_schemas
from pipeline.validation import Limits, parse_message
from reconcile.checks import query
from schemas import event_spec_from, event_specs
from schemas.compat import check, compare, released_specs
from schemas.contract import bigquery_row, insert_id
from tests.helpers import BASE, order

NOW = BASE + timedelta(minutes=1)


def evolved(event_type="order", mutate=None):
    avro = copy.deepcopy(event_specs()[event_type].avro)
    mutate(avro)
    return event_spec_from(avro)


def _add_optional(avro):
    avro["fields"].append({"name": "coupon_code", "type": ["null", "string"], "default": None, "doc": "Coupon."})
    address = next(f for f in avro["fields"] if f["name"] == "shipping_address")
    address["type"]["fields"].append({"name": "zip", "type": ["null", "string"], "default": None, "doc": "Zip."})


def test_the_committed_schemas_are_compatible_with_the_released_ones():
    """The CI gate: a change to schemas/events must pass this."""
    assert set(released_specs()) == set(event_specs())
    for report in check():
        assert report.problems == [], report.problems


def test_optional_fields_are_compatible_and_say_what_bigquery_needs():
    report = compare(event_specs()["order"], evolved(mutate=_add_optional))
    assert report.problems == []
    assert "ALTER TABLE `${PROJECT}.${DATASET}.order_events` ADD COLUMN IF NOT EXISTS coupon_code STRING;" in \
        report.statements
    assert any("shipping_address.zip" in s and "--update-schemas" in s for s in report.statements)


@pytest.mark.parametrize("mutate,needle", [
    (lambda a: a["fields"].pop(1), "customer_id: removed"),
    (lambda a: a["fields"][1].update(type="long"), "customer_id: type changed"),
    (lambda a: a["fields"].append({"name": "channel", "type": "string"}), "channel: new required field"),
    (lambda a: a["fields"][3]["type"]["symbols"].remove("shipped"), "enum symbols removed: shipped"),
    (lambda a: a.update(identity=["order_id"]), "identity changed"),
    (lambda a: a["fields"][-1].update(type="string"), "updated_at: became required"),
])
def test_incompatible_changes_are_refused(mutate, needle):
    report = compare(event_specs()["order"], evolved(mutate=mutate))
    assert any(needle in p for p in report.problems), report.problems


def test_the_gate_command_fails_on_an_incompatible_change(monkeypatch, capsys):
    from schemas import compat

    monkeypatch.setattr(compat, "event_specs", lambda: {**event_specs(), "order": evolved(
        mutate=lambda a: a["fields"].pop(1))})
    assert compat.main(["--check"]) == 1
    assert "INCOMPATIBLE order: customer_id: removed" in capsys.readouterr().err


@pytest.mark.stack
def test_a_real_evolution_old_and_new_messages_both_land(stack, monkeypatch):
    """v1 table; a producer ahead of it sends coupon_code (and a zip): kept in
    `extra`. The schema gains coupon_code as an optional field, the table is
    updated in place, and from then on old messages (without it) and new ones
    land side by side, nothing dead-lettered, nothing lost. (The emulator
    cannot add a nested field to an existing table, so the zip stays in
    extra here; test_optional_fields_are_compatible... covers nested ones.)"""
    client = bigquery_client(stack.project)
    dataset = "evolution"
    ensure_dataset(client, stack.project, dataset)
    ensure_tables_api(client, stack.project, dataset)
    table = f"{stack.project}.{dataset}.order_events"
    old_body = order(BASE, order_id="old-order")
    new_body = order(BASE, order_id="new-order", coupon_code="SPRING25",
                     shipping_address={"street": "1 Main St", "city": "Berlin", "country": "DE", "zip": "10115"})

    def insert(body):
        event = parse_message(orjson.dumps(body), None, None, now=NOW, limits=Limits())
        errors = client.insert_rows_json(table, [bigquery_row(event, None, NOW, "stream")],
                                         row_ids=[insert_id(event.event_type, event.event_id)], retry=None)
        assert errors == []
        return event

    # Before: the unknown fields ride in extra.
    ahead = insert(new_body)
    assert ahead.extra == {"coupon_code": "SPRING25", "shipping_address": {"zip": "10115"}}
    insert(old_body)

    # The evolution: compatible, then applied to the table in place.
    v2 = evolved(mutate=lambda a: a["fields"].append(
        {"name": "coupon_code", "type": ["null", "string"], "default": None, "doc": "Coupon."}))
    assert compare(event_specs()["order"], v2).problems == []
    changes = update_table_schemas(client, stack.project, dataset, {"order_events": v2})
    assert changes == {"order_events": ["coupon_code: added"]}
    monkeypatch.setattr("schemas.contract.event_specs", lambda: {**event_specs(), "order": v2})

    after_new = insert(dict(new_body, order_id="new-order-2"))
    after_old = insert(dict(old_body, order_id="old-order-2"))
    assert after_new.extra == {"shipping_address": {"zip": "10115"}} and after_new.payload["coupon_code"] == "SPRING25"
    assert after_old.payload["coupon_code"] is None

    rows = {r["order_id"]: r for r in query(client, f"SELECT order_id, coupon_code, TO_JSON_STRING(extra) AS extra "
                                                    f"FROM `{table}`")}
    assert set(rows) == {"old-order", "new-order", "new-order-2", "old-order-2"}
    assert rows["new-order-2"]["coupon_code"] == "SPRING25" and "10115" in rows["new-order-2"]["extra"]
    assert rows["old-order-2"]["coupon_code"] is None
    assert "SPRING25" in rows["new-order"]["extra"]  # the row written before the evolution kept its value
