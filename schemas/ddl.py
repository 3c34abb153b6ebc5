"""Write or check the generated DDL in ddl/tables/.

    python -m schemas.ddl --write   # after changing a schema
    python -m schemas.ddl --check   # CI: fails if ddl/ is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas.bigquery import all_ddl

DDL_DIR = Path(__file__).resolve().parent.parent / "ddl" / "tables"


def stale_files() -> list[str]:
    wanted = all_ddl()
    stale = [name for name, text in wanted.items()
             if not (DDL_DIR / name).exists() or (DDL_DIR / name).read_text() != text]
    extra = [p.name for p in DDL_DIR.glob("*.sql") if p.name not in wanted]
    return sorted(stale + extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        DDL_DIR.mkdir(parents=True, exist_ok=True)
        for name, text in all_ddl().items():
            (DDL_DIR / name).write_text(text)
        print(f"wrote {len(all_ddl())} files to {DDL_DIR}")
        return 0
    stale = stale_files()
    if stale:
        print(f"ddl/tables is stale for: {', '.join(stale)}; run python -m schemas.ddl --write", file=sys.stderr)
        return 1
    print("ddl/tables matches schemas/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
