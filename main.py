"""Entry point of the flex template (FLEX_TEMPLATE_PYTHON_PY_FILE): the same
job and options as `python -m pipeline`."""

import sys

from pipeline.launch import run

if __name__ == "__main__":
    sys.exit(run())
