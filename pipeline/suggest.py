"""What to say about arguments nobody defines, for the job's launchers
(pipeline.options) and every other command (common.cli) alike: the closest
valid option, or that a bare word is not an option. No Beam import, so the
light commands can use it."""

from __future__ import annotations

import difflib


def unknown_arguments(unknown: list[str], known: list[str], hint: dict | None = None) -> list[str]:
    """One problem per unknown argument. `hint`: option -> why it is refused
    here (an option of another command)."""
    problems = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            problems.append(f"unexpected argument {arg!r} (options look like --name=value)")
        elif hint and name in hint:
            problems.append(f"{name}: {hint[name]}")
        else:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            problems.append(f"unknown option {name}" + (f": did you mean {close[0]}?" if close else ""))
    return problems
