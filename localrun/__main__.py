"""`python -m localrun ...`: the streaming job on the local emulator stack (localrun/runner.py)."""

import sys

from localrun.runner import run

if __name__ == "__main__":
    sys.exit(run())
