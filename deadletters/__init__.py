"""python -m deadletters: the dead-letter table, and replays after a fix (see __main__.py)."""
