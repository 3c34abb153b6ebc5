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
        # A misspelt option first: argparse would otherwise complain that the
        # option it meant is missing, which hides the typo.
        unknown = self._unknown_with_nothing_required(args)
        if unknown:
            known = [s for action in self._actions for s in action.option_strings]
            self.error("; ".join(unknown_arguments(unknown, known)))
        return super().parse_args(args, namespace)

    def _unknown_with_nothing_required(self, args) -> list[str]:
        saved = [(action, action.required) for action in self._actions if action.option_strings]
        groups = [(group, group.required) for group in self._mutually_exclusive_groups]
        try:
            for action, _ in saved:
                action.required = False
            for group, _ in groups:
                group.required = False
            return self.parse_known_args(args)[1]
        finally:
            for action, required in saved:
                action.required = required
            for group, required in groups:
                group.required = required


def fail(message: str) -> int:
    """Say what to fix in one line; the exit status of a setup problem."""
    print(f"error: {message}", file=sys.stderr)
    return 2
