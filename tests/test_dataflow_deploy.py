"""Deployment artefacts: the Dataflow graph builds offline (dry run), the
script passes shellcheck and checks its inputs, the template is consistent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.graph import Sinks, build_pipeline
from pipeline.options import EcommerceOptions

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PROJECT": "my-project", "REGION": "europe-west1", "BUCKET": "my-bucket"}


def _script(*args, env=None):
    full = {k: v for k, v in os.environ.items() if k not in ENV}
    full.update(env if env is not None else ENV)
    return subprocess.run(["./run_dataflow.sh", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_shellcheck_passes():
    assert shutil.which("shellcheck"), "scripts/bootstrap.sh installs shellcheck"
    result = subprocess.run(["shellcheck", "run_dataflow.sh", "scripts/bootstrap.sh", "scripts/demo.sh",
                             "scripts/test.sh", ".ci/run"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_dry_run_builds_the_dataflow_graph_offline():
    result = _script("dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dry run: the Dataflow job graph was built" in result.stderr


def test_the_backfill_builds_as_a_dataflow_batch_job_offline():
    result = _script("backfill-dry-run", "s3://history-bucket/events/**", "gs://old-exports/2024/**")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dry run: the backfill's Dataflow graph was built" in result.stderr
    missing = _script("backfill")
    assert missing.returncode == 2 and "usage: ./run_dataflow.sh backfill PATTERN" in missing.stderr


@pytest.mark.parametrize("env,needle", [
    ({"REGION": "europe-west1", "BUCKET": "b-1"}, "set PROJECT"),
    ({**ENV, "BUCKET": "gs://my-bucket"}, "set BUCKET"),
    ({**ENV, "STREAMING_MODE": "sometimes"}, "STREAMING_MODE"),
])
def test_script_says_what_is_missing(env, needle):
    result = _script("dry-run", env=env)
    assert result.returncode == 2 and needle in result.stderr


@pytest.mark.parametrize("flags,id_label,timestamp_attribute", [
    ([], None, None),  # the brief's producer sets no attributes: nothing is asked of them
    (["--pubsub_id_label=on", "--pubsub_timestamp_attribute=on"], "event_id", "event_time"),
])
def test_dataflow_read_asks_for_attributes_only_when_told(flags, id_label, timestamp_attribute):
    options = PipelineOptions(["--runner=DataflowRunner", "--streaming", "--project=my-project",
                               "--region=europe-west1", "--temp_location=gs://my-bucket/tmp",
                               "--subscription=projects/my-project/subscriptions/backend-events-topic-sub",
                               "--output_prefix=gs://my-bucket/output", *flags])
    opts = options.view_as(EcommerceOptions)
    opts.validate_all()
    # Build the graph with a local runner object: constructing DataflowRunner
    # looks for credentials. The options still say Dataflow, which drives the read.
    pipeline = beam.Pipeline(runner="BundleBasedDirectRunner", options=options)
    build_pipeline(pipeline, opts, Sinks.production(opts))
    reads = [t.transform for t in pipeline.transforms_stack[0].parts if t.full_label == "ReadPubSub"]
    read = reads[0]._source if hasattr(reads[0], "_source") else reads[0]
    assert read.id_label == id_label
    assert read.timestamp_attribute == timestamp_attribute


def test_template_pins_the_same_beam_version_and_lists_real_options():
    beam_pin = re.search(r"apache-beam\[[a-z,]+\]==([\d.]+)", (ROOT / "requirements.txt").read_text()).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG BEAM_VERSION={beam_pin}" in dockerfile
    assert ":latest" not in dockerfile  # every base image pinned
    metadata = json.loads((ROOT / "metadata.json").read_text())
    import argparse

    parser = argparse.ArgumentParser()
    EcommerceOptions._add_argparse_args(parser)
    known = {a.dest for a in parser._actions}
    for param in metadata["parameters"]:
        assert param["name"] in known, param["name"]
        assert param["helpText"] and param["regexes"]
        re.compile(param["regexes"][0])
