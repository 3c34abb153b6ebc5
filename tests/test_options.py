"""Bad options stop the job before the graph is built, saying what to fix."""

import pytest

from pipeline.job import run
from pipeline.options import EcommerceOptions, OptionsError

GOOD = ["--project=local-project", "--subscription=projects/local-project/subscriptions/events-sub",
        "--output_prefix=/tmp/out"]


def opts(*extra):
    return EcommerceOptions([*GOOD, *extra])


def test_defaults_are_valid():
    o = opts()
    o.validate_all()
    assert o.window_size_s == 60 and o.allowed_lateness_s >= 120
    assert o.dedup_horizon_s >= o.window_size_s + o.allowed_lateness_s
    assert not o.use_id_label() and not o.use_timestamp_attribute()
    dataflow = opts("--runner=DataflowRunner", "--streaming", "--output_prefix=gs://b/out")
    assert dataflow.use_id_label() and dataflow.use_timestamp_attribute()


@pytest.mark.parametrize("extra,needle", [
    (["--subscription=events-sub"], "--subscription"),
    (["--window_size_s=45"], "--window_size_s"),
    (["--dedup_horizon_s=60"], "--dedup_horizon_s"),
    (["--num_file_shards=0"], "--num_file_shards"),
    (["--dataset=bad-name"], "--dataset"),
    (["--output_prefix=s3://bucket/x"], "--output_prefix"),
    (["--runner=DataflowRunner", "--streaming"], "gs://"),
    (["--project=X"], "project"),
])
def test_bad_options_are_named(extra, needle):
    with pytest.raises(OptionsError) as info:
        opts(*extra).validate_all()
    assert needle in str(info.value)


def test_cli_exits_2_with_a_message(capsys):
    assert run([*GOOD, "--window_size_s=7", "--skip_preflight"]) == 2
    assert "--window_size_s" in capsys.readouterr().err
