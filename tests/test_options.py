"""Bad options stop the job before the graph is built, saying what to fix."""

import pytest

from pipeline.launch import run
from pipeline.options import EcommerceOptions, OptionsError

GOOD = ["--project=local-project", "--subscription=projects/local-project/subscriptions/backend-events-topic-sub",
        "--output_prefix=/tmp/out"]


def opts(*extra):
    return EcommerceOptions([*GOOD, *extra])


def test_defaults_are_valid():
    o = opts()
    o.validate_all()
    assert o.allowed_lateness_s >= 120
    assert o.dedup_memory_s >= 60 and o.dedup_buckets > 0
    # The brief's producer sets no attributes: Dataflow asks for none unless told.
    dataflow = opts("--runner=DataflowRunner", "--streaming", "--output_prefix=gs://b/out")
    dataflow.validate_all()
    assert dataflow.pubsub_id_label == "off" and dataflow.pubsub_timestamp_attribute == "off"


@pytest.mark.parametrize("extra,needle", [
    (["--subscription=backend-events-topic-sub"], "--subscription"),
    (["--allowed_lateness_s=-1"], "--allowed_lateness_s"),
    (["--dedup_memory_s=10"], "--dedup_memory_s"),
    (["--dedup_buckets=0"], "--dedup_buckets"),
    (["--pubsub_id_label=on"], "only on Dataflow"),
    (["--num_file_shards=0"], "--num_file_shards"),
    (["--dataset=bad-name"], "--dataset"),
    (["--output_prefix=s3://bucket/x"], "--output_prefix"),
    (["--runner=DataflowRunner", "--streaming"], "gs://"),
    (["--project=X"], "project"),
    (["--analytics=alerts,sesions"], "unknown step(s) sesions"),
    (["--metrics_emit_s=0"], "--metrics_emit_s"),
    (["--session_gap_s=5"], "--session_gap_s"),
])
def test_bad_options_are_named(extra, needle):
    with pytest.raises(OptionsError) as info:
        opts(*extra).validate_all()
    assert needle in str(info.value)


@pytest.mark.parametrize("value,parts", [("on", {"alerts", "metrics", "sessions"}), ("off", set()),
                                         ("metrics", {"metrics"}), ("alerts, sessions", {"alerts", "sessions"})])
def test_analytics_steps_can_be_chosen(value, parts):
    o = opts(f"--analytics={value}")
    o.validate_all()
    assert o.analytics_parts() == parts and o.analytics_on() == bool(parts)


def test_cli_exits_2_with_a_message(capsys):
    assert run([*GOOD, "--runner=DataflowRunner", "--streaming", "--output_prefix=gs://b/o", "--num_file_shards=700",
                "--dry_run=True"]) == 2
    assert "--num_file_shards" in capsys.readouterr().err


@pytest.mark.parametrize("argv, wanted", [
    ([], 256),                                # the local runner's own default
    (["--dedup_buckets=4096"], 4096),         # what the command line says wins
    (["--dedup_buckets", "32"], 32),
])
def test_the_local_runner_uses_fewer_dedup_buckets_unless_told(argv, wanted):
    from apache_beam.options.pipeline_options import PipelineOptions

    from localrun.options import apply_local_defaults

    options = PipelineOptions(argv)
    apply_local_defaults(options, argv)
    assert options.view_as(EcommerceOptions).dedup_buckets == wanted
    assert options.view_as(EcommerceOptions).alert_buckets == 64
    # The Dataflow launcher parses the same class without it: production keeps its default.
    assert PipelineOptions([]).view_as(EcommerceOptions).dedup_buckets == 16384
    assert PipelineOptions([]).view_as(EcommerceOptions).alert_buckets == 4096
