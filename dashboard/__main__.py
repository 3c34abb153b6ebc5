"""`python -m dashboard`: serve the live dashboard (dashboard/app.py)."""

import sys

from dashboard.app import main

if __name__ == "__main__":
    sys.exit(main())
