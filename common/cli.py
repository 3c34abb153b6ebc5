"""One behaviour for every command of the project (`python -m localstack`,
`provision`, `simulator`, `reconcile`, `demo`, `bench`, `schemas.ddl`, ...):
the usage names the command as it is typed, `--help` lists every option with
its help, an unknown option is refused with the closest valid name (no
abbreviations, which silently pick an option), and a setup problem is one
line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import difflib
import sys


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, description: str | None = None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            known = [s for action in self._actions for s in action.option_strings]
            problems = []
            for arg in unknown:
                name = arg.split("=", 1)[0]
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if name.startswith("-") else []
                problems.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")
                                if name.startswith("-") else f"unexpected argument {arg!r}")
            self.error("; ".join(problems))
        return parsed


def fail(message: str) -> int:
    """Say what to fix in one line; the exit status of a setup problem."""
    print(f"error: {message}", file=sys.stderr)
    return 2
