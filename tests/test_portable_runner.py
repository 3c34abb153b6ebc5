"""The job's whole graph on the FnApiRunner: the SDK harness that Dataflow
workers run, which fuses steps into stages and moves state and timers through
the Fn API (the DirectRunner used by the other graph tests does neither).
Two steps' timers of the same name once broke here and nowhere else."""

from __future__ import annotations

import os

import apache_beam as beam

import bench.like as like
from bench.core import generate


def test_the_whole_graph_runs_on_the_runner_dataflow_workers_use(tmp_path, monkeypatch):
    monkeypatch.setattr(like, "_SOURCE", generate(600))
    with beam.Pipeline(runner="FnApiRunner", options=like._options()) as p:
        like.graph_pipeline(p, str(tmp_path), analytics=True)
    files = [n for _, _, names in os.walk(tmp_path) for n in names if n.endswith(".json") and n[0] != "_"]
    lines = sum(1 for root, _, names in os.walk(tmp_path) for n in names
                if n.endswith(".json") and n[0] != "_" for _ in open(os.path.join(root, n), "rb"))
    assert files and 500 <= lines <= 600  # 600 messages less the duplicates and malformed ones
