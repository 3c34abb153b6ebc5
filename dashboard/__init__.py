"""A live dashboard of the job's analytics tables (Dash + plotly): events per
minute by type, unique users, lag percentiles, duplicates, conflicts, dead
letters, late arrivals, alerts and sessions, refreshed every few seconds from
BigQuery (the emulator locally, real BigQuery in production).

    python -m dashboard --project local-project --dataset ecommerce   # http://127.0.0.1:8050
"""
