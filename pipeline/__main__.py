"""`python -m pipeline ...`: run the streaming job (see pipeline/job.py)."""

import sys

from pipeline.job import run

if __name__ == "__main__":
    sys.exit(run())
