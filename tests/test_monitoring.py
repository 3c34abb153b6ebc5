"""Production monitoring as code (deploy/monitoring/): the Cloud Monitoring
dashboard and alert policies are well formed, watch this job only, and every
counter they name is one the job really emits: the job's graph is run on a
stream with every kind of input, and its metrics are read back."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from pipeline.graph import build_pipeline
from pipeline.options import EcommerceOptions
from tests.helpers import BASE, activity, graph_sinks, inventory, order

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
BUILTIN = {"dataflow.googleapis.com/job/system_lag", "dataflow.googleapis.com/job/data_watermark_age"}
USER_COUNTER = "dataflow.googleapis.com/job/user_counter"


def _filters(document) -> list[str]:
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend([value] if key == "filter" else _filters(value))
    elif isinstance(document, list):
        for value in document:
            found.extend(_filters(value))
    return found


def _documents():
    return [MONITORING / "dashboard.json", *sorted((MONITORING / "alert_policies").glob("*.json"))]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> set[str]:
    """Counter names the job's graph emits on a stream with valid events of
    every type, a duplicate, a conflict, malformed messages, a late and a far
    late event and a burst from one user; plus the BigQuery sink's own
    (rows refused, outage retries), which only an outage or a refusal moves."""
    from apache_beam.runners.direct.executor import TransformExecutor

    from localrun import bundle_metrics
    from pipeline.bigquery_sink import InsertRows

    t = lambda s: BASE + timedelta(seconds=s)  # noqa: E731
    msg = lambda body, at: TimestampedValue((body if isinstance(body, bytes) else json.dumps(body).encode(), {}),  # noqa: E731
                                            at.timestamp())
    burst = [msg(activity(t(1) + timedelta(milliseconds=i)), t(1)) for i in range(101)]
    stream = (TestStream().advance_watermark_to(BASE.timestamp())
              .add_elements([msg(order(t(10)), t(10)), msg(inventory(t(20)), t(20)), msg(inventory(t(20)), t(20)),
                             msg(inventory(t(20), quantity_change=-3), t(21)), msg(b"{not json", t(22)), *burst])
              .advance_watermark_to((BASE + timedelta(minutes=1, seconds=5)).timestamp())
              .add_elements([msg(order(t(30), status="processing"), t(30)),
                             msg(inventory(BASE - timedelta(minutes=9), inventory_id="far"), t(70))])
              .advance_watermark_to_infinity())
    options = PipelineOptions(["--streaming", "--project=local-project", "--max_event_age_days=0",
                               f"--output_prefix={tmp_path_factory.mktemp('out')}", "--late_firing_delay_s=1"])
    pipeline = TestPipeline(runner="BundleBasedDirectRunner", options=options)
    build_pipeline(pipeline, options.view_as(EcommerceOptions), graph_sinks(), messages=pipeline | stream,
                   clock=lambda: 0.0)
    with pytest.MonkeyPatch.context() as patch:  # as a local run counts (localrun/bundle_metrics.py), then undone
        patch.setattr(TransformExecutor, "call", TransformExecutor.call)
        patch.setattr(bundle_metrics, "_original", {})
        bundle_metrics.count_every_bundle()
        result = pipeline.run()
        result.wait_until_finish()
    names = {c.key.metric.name for c in result.metrics().query(MetricsFilter())["counters"]}
    sink = InsertRows("p", "d")
    names |= {value.metric_name.name for value in vars(sink).values() if hasattr(value, "metric_name")}
    return names


@pytest.mark.parametrize("path", _documents(), ids=lambda p: p.stem)
def test_each_file_is_well_formed_and_watches_this_job_only(path):
    document = json.loads(path.read_text())
    assert document["displayName"]
    filters = _filters(document)
    assert filters, "nothing is watched"
    for flt in filters:
        assert 'resource.type="dataflow_job"' in flt and 'resource.label.job_name="${JOB_NAME}"' in flt, flt
    if path.parent.name == "alert_policies":
        assert document["documentation"]["content"], "say what to do when it fires"
        for condition in document["conditions"]:
            threshold = condition["conditionThreshold"]
            assert threshold["comparison"] in ("COMPARISON_GT", "COMPARISON_LT")
            assert threshold["aggregations"][0]["alignmentPeriod"] == "60s"
    else:
        assert len(document["mosaicLayout"]["tiles"]) >= 8


def unknown_metrics(filters: list[str], emitted: set[str]) -> list[str]:
    """The filters naming a metric that is neither one of Dataflow's own
    watched here nor a counter the job emits."""
    bad = []
    for flt in filters:
        metric = re.search(r'metric\.type="([^"]+)"', flt).group(1)
        if metric != USER_COUNTER:
            if metric not in BUILTIN:
                bad.append(flt)
            continue
        exact = re.search(r'metric\.label\.metric_name="([^"]+)"', flt)
        pattern = re.search(r'metric\.label\.metric_name=monitoring\.regex\.full_match\("([^"]+)"\)', flt)
        if exact:
            matched = exact.group(1) in emitted
        else:
            matched = bool(pattern) and any(re.fullmatch(pattern.group(1), name) for name in emitted)
        if not matched:
            bad.append(flt)
    return bad


def test_every_metric_named_is_one_the_job_emits(emitted):
    # What the alert policies and dashboard must see, by the issue: lag, freshness, dead letters, conflicts, alerts.
    assert {"invalid", "alerts_fired", "rows_refused", "lines_late"} <= emitted
    assert any(name.startswith("conflicts_") for name in emitted)
    for path in _documents():
        assert unknown_metrics(_filters(json.loads(path.read_text())), emitted) == [], path.name


def test_the_check_fails_on_a_metric_the_job_does_not_emit(emitted):
    counter = f'metric.type="{USER_COUNTER}" AND resource.type="dataflow_job"'
    wrong = [f'{counter} AND metric.label.metric_name="alert_fired"',
             f'{counter} AND metric.label.metric_name=monitoring.regex.full_match("conflict_.*")',
             'metric.type="dataflow.googleapis.com/job/no_such_metric" AND resource.type="dataflow_job"']
    assert unknown_metrics(wrong, emitted) == wrong


def test_a_dashboard_tile_covers_each_signal_the_issue_names():
    titles = " ".join(t["widget"]["title"].lower() for t in
                      json.loads((MONITORING / "dashboard.json").read_text())["mosaicLayout"]["tiles"])
    for signal in ("system lag", "freshness", "dead letters", "conflicts", "anomaly alerts", "duplicates"):
        assert signal in titles, signal
