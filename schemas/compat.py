"""The schema compatibility gate.

`schemas/released/` holds the event schemas as last released (deployed). A
change to `schemas/events/` must keep every message that was valid under the
released schema valid, and every stored row readable:

* allowed: a new optional field (top level or nested), a new enum symbol, a
  required field made optional;
* refused: a field removed or renamed, a field's type changed, a new required
  field (old producers would be dead-lettered), an enum symbol removed, the
  identity, event-time fields or table name changed.

    python -m schemas.compat --check     # CI: exit 1 on an incompatible change
    python -m schemas.compat --release   # after deploying: the current schemas become the released ones

For every allowed change the gate prints what real BigQuery needs
(`ALTER TABLE ... ADD COLUMN` for a top-level field; nested fields and
relaxed modes go through `python -m provision --update-schemas`,
which patches the table schema through the API). Unknown fields never wait for
this: until the column exists, they are kept in the `extra` JSON column.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from schemas import SCHEMA_DIR, TableSpec, event_spec_from, event_specs
from schemas.bigquery import _ddl_type_with_mode, _column

RELEASED_DIR = SCHEMA_DIR / "released"


@dataclass
class Report:
    event_type: str
    problems: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


def _unwrap(avro_type):
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null"), True
    return avro_type, False


def _kind(avro_type):
    inner, _ = _unwrap(avro_type)
    return inner["type"] if isinstance(inner, dict) else inner


def _compare_fields(old_fields, new_fields, path: str, report: Report, table: str) -> None:
    old = {f["name"]: f for f in old_fields}
    new = {f["name"]: f for f in new_fields}
    for name, f in old.items():
        where = f"{path}{name}"
        if name not in new:
            report.problems.append(f"{where}: removed (stored rows and old producers still have it)")
            continue
        g = new[name]
        old_type, old_nullable = _unwrap(f["type"])
        new_type, new_nullable = _unwrap(g["type"])
        if _kind(old_type) != _kind(new_type) or f.get("bq_type") != g.get("bq_type") \
                or f.get("format") != g.get("format"):
            report.problems.append(f"{where}: type changed from {_describe(f)} to {_describe(g)}")
            continue
        if old_nullable and not new_nullable:
            report.problems.append(f"{where}: became required (old producers may omit it)")
        elif not old_nullable and new_nullable:
            report.changes.append(f"{where}: now optional")
            report.statements.append(f"-- {where}: relax to NULLABLE: python -m provision --update-schemas")
        kind = _kind(old_type)
        if kind == "enum":
            removed = set(old_type["symbols"]) - set(new_type["symbols"])
            added = [s for s in new_type["symbols"] if s not in old_type["symbols"]]
            if removed:
                report.problems.append(f"{where}: enum symbols removed: {', '.join(sorted(removed))}")
            if added:
                report.changes.append(f"{where}: new enum symbols {', '.join(added)} (a STRING column: nothing to do)")
        elif kind == "record":
            _compare_fields(old_type["fields"], new_type["fields"], f"{where}.", report, table)
        elif kind == "array":
            items_old, items_new = old_type["items"], new_type["items"]
            if _kind(items_old) != _kind(items_new):
                report.problems.append(f"{where}[]: item type changed")
            elif _kind(items_old) == "record":
                _compare_fields(items_old["fields"], items_new["fields"], f"{where}[].", report, table)
    for name, g in new.items():
        if name in old:
            continue
        where = f"{path}{name}"
        _, nullable = _unwrap(g["type"])
        if not nullable:
            report.problems.append(f"{where}: new required field (messages from producers that do not send it yet "
                                   "would be dead-lettered); make it [\"null\", ...] with a default")
            continue
        report.changes.append(f"{where}: new optional field")
        if path:
            report.statements.append(f"-- {where}: a nested field: python -m provision --update-schemas")
        else:
            column = _column(g)
            report.statements.append(f"ALTER TABLE `${{PROJECT}}.${{DATASET}}.{table}` "
                                     f"ADD COLUMN IF NOT EXISTS {name} {_ddl_type_with_mode(column)};")


def _describe(f: dict) -> str:
    kind = _kind(f["type"])
    return f"{kind}" + (f" ({f['bq_type']})" if f.get("bq_type") else "") + (f" [{f['format']}]" if f.get("format")
                                                                              else "")


def compare(old: TableSpec, new: TableSpec) -> Report:
    report = Report(new.event_type)
    for key in ("identity", "event_time_fields", "event_type"):
        if old.avro.get(key) != new.avro.get(key):
            report.problems.append(f"{key} changed from {old.avro.get(key)!r} to {new.avro.get(key)!r}: stored "
                                   "identities and event times would no longer match")
    if old.name != new.name:
        report.problems.append(f"table renamed from {old.name} to {new.name}")
    _compare_fields(old.payload_fields, new.payload_fields, "", report, new.name)
    return report


def released_specs(folder: Path = RELEASED_DIR) -> dict[str, TableSpec]:
    specs = {}
    for path in sorted(folder.glob("*.avsc")):
        avro = json.loads(path.read_text())
        specs[avro["event_type"]] = event_spec_from(avro)
    return specs


def check(current: dict[str, TableSpec] | None = None, released: dict[str, TableSpec] | None = None) -> list[Report]:
    current = current if current is not None else event_specs()
    released = released if released is not None else released_specs()
    reports = []
    for event_type, old in released.items():
        if event_type not in current:
            report = Report(event_type)
            report.problems.append("event type removed")
            reports.append(report)
            continue
        reports.append(compare(old, current[event_type]))
    for event_type in current:
        if event_type not in released:
            report = Report(event_type)
            report.changes.append("new event type: provisioning creates its table")
            reports.append(report)
    return reports


def main(argv=None) -> int:
    from common.cli import Parser  # the command only; workers never import it

    parser = Parser("python -m schemas.compat", __doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="compare schemas/events with schemas/released")
    group.add_argument("--release", action="store_true", help="copy schemas/events to schemas/released")
    args = parser.parse_args(argv)
    if args.release:
        RELEASED_DIR.mkdir(exist_ok=True)
        for path in sorted((SCHEMA_DIR / "events").glob("*.avsc")):
            shutil.copyfile(path, RELEASED_DIR / path.name)
        print(f"released: {', '.join(p.stem for p in sorted(RELEASED_DIR.glob('*.avsc')))}")
        return 0
    failed = False
    for report in check():
        for problem in report.problems:
            failed = True
            print(f"INCOMPATIBLE {report.event_type}: {problem}", file=sys.stderr)
        for change in report.changes:
            print(f"compatible {report.event_type}: {change}")
        for statement in report.statements:
            print(statement)
    if failed:
        print("schema change refused: keep old fields and types, add only optional fields (see schemas/compat.py)",
              file=sys.stderr)
        return 1
    print("schemas/events is compatible with schemas/released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
