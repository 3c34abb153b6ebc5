"""python -m demo: README command 1 (see demo/__main__.py)."""
