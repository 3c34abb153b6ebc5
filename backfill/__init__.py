"""`python -m backfill`: historical JSON through the job's own rules (see __main__.py)."""
