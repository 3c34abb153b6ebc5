"""Write or check the generated DDL: every table in ddl/tables/, and the
views in ddl/views/ that follow from the event schemas (the rest of
ddl/views/ is written by hand).

    python -m schemas.ddl --write   # after changing a schema
    python -m schemas.ddl --check   # CI: fails if ddl/ is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from schemas.bigquery import all_ddl, generated_views

DDL_DIR = Path(__file__).resolve().parent.parent / "ddl" / "tables"
VIEWS_DIR = DDL_DIR.parent / "views"


def _wanted() -> dict[Path, str]:
    return {**{DDL_DIR / n: t for n, t in all_ddl().items()}, **{VIEWS_DIR / n: t for n, t in generated_views().items()}}


def stale_files() -> list[str]:
    wanted = _wanted()
    stale = [str(path.relative_to(DDL_DIR.parent)) for path, text in wanted.items()
             if not path.exists() or path.read_text() != text]
    extra = [f"tables/{p.name}" for p in DDL_DIR.glob("*.sql") if p not in wanted]
    return sorted(stale + extra)


def main(argv=None) -> int:
    from common.cli import Parser  # the command only; workers never import it

    parser = Parser("python -m schemas.ddl", __doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="write ddl/ from schemas/ (after changing a schema)")
    group.add_argument("--check", action="store_true", help="fail if ddl/ differs from what schemas/ generates")
    args = parser.parse_args(argv)
    if args.write:
        wanted = _wanted()
        for path, text in wanted.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        print(f"wrote {len(wanted)} files under {DDL_DIR.parent}")
        return 0
    stale = stale_files()
    if stale:
        print(f"ddl/ is stale for: {', '.join(stale)}; run python -m schemas.ddl --write", file=sys.stderr)
        return 1
    print("ddl/ matches schemas/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
