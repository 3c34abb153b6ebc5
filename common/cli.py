"""One behaviour for every command of the project (`python -m localstack`,
`provision`, `simulator`, `reconcile`, `demo`, `bench`, `schemas.ddl`, ...):
the usage names the command as it is typed, `--help` lists every option with
its help, an unknown option is refused with the closest valid name (no
abbreviations, which silently pick an option), and a setup problem is one
line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys

from pipeline.suggest import unknown_arguments


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, description: str | None = None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            known = [s for action in self._actions for s in action.option_strings]
            self.error("; ".join(unknown_arguments(unknown, known)))
        return parsed


def fail(message: str) -> int:
    """Say what to fix in one line; the exit status of a setup problem."""
    print(f"error: {message}", file=sys.stderr)
    return 2
