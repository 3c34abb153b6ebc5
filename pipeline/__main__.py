"""`python -m pipeline ...`: submit the streaming job to Dataflow (pipeline/launch.py).
A local run on the emulator stack is `python -m localrun`."""

import sys

from pipeline.launch import run

if __name__ == "__main__":
    sys.exit(run())
