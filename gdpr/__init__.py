"""python -m gdpr: erase a data subject and prove it (see __main__.py and erase.py)."""
