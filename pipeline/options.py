"""The job's options, the same for every run: Dataflow (`python -m pipeline`,
the flex template), a local run (`python -m localrun`, which adds its own few
options in `localrun.options`) and the tests.

`validate_all()` checks every value before the graph is built and raises
`OptionsError` with a message that says what to fix; `parse_options` refuses
an option nobody defines (naming the closest one) instead of letting a typo
run the job with a default.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions, StandardOptions,
                                                  _BeamArgumentParser)

from pipeline.policy import LatenessPolicy
from pipeline.retry import DATAFLOW_MAX_WAIT_S
from pipeline.suggest import unknown_arguments
from pipeline.validation import Limits
from schemas.contract import ALERT_THRESHOLD, ALERTS_TOPIC

ANALYTICS_PARTS = ("alerts", "metrics", "sessions")  # --analytics steps, in graph order

_SUBSCRIPTION_RE = re.compile(r"^projects/[a-z][-a-z0-9]{4,61}[a-z0-9]/subscriptions/[A-Za-z][-A-Za-z0-9._~%+]{2,254}$")
_TOPIC_RE = re.compile(r"^projects/[a-z][-a-z0-9]{4,61}[a-z0-9]/topics/[A-Za-z][-A-Za-z0-9._~%+]{2,254}$")
_PROJECT_RE = re.compile(r"^[a-z][-a-z0-9]{4,61}[a-z0-9]$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


class OptionsError(ValueError):
    """A bad option: the message names the option and the fix."""


class EcommerceOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("e-commerce streaming job")
        g.add_argument("--subscription", help="Pub/Sub subscription to read: projects/<p>/subscriptions/<s>.")
        g.add_argument("--bq_project", help="Project of the BigQuery dataset (default: --project).")
        g.add_argument("--dataset", default="ecommerce", help="BigQuery dataset holding the tables (created by provisioning).")
        g.add_argument("--output_prefix",
                       help="Where the minute folders go: gs://<bucket>/output or a local folder. "
                            "Files: <prefix>/<type>/YYYY/MM/DD/HH/mm/<type>_<yyyyMMddHHmm><NNNN>.json")
        g.add_argument("--allowed_lateness_s", type=int, default=180,
                       help="How long after a minute's end (event time, by the watermark) the job keeps that minute "
                            "folder's state: late events within it are added as late files at once; later ones "
                            "(far late) still land in the folder, after the job reads the folder back.")
        g.add_argument("--late_firing_delay_s", type=int, default=10,
                       help="Late events of one minute folder arriving within this many seconds (processing time) "
                            "share one late file.")
        g.add_argument("--dedup_memory_s", type=int, default=600,
                       help="How long (processing time, from when the job first saw it) an event identity is "
                            "remembered to drop duplicates and find conflicts: between this and twice this. "
                            "Covers redeliveries, producer retries and replays; files and the *_dedup views "
                            "stay exact beyond it.")
        g.add_argument("--dedup_buckets", type=int, default=16384,
                       help="Keys the dedup memory is spread over. Size it so that rate x 2 x --dedup_memory_s / "
                            "buckets stays below about 100 (1,000,000 events/minute: 524288). python -m localrun defaults to 256 "
                            "(the DirectRunner visits every key on each bundle: localrun/options.py).")
        g.add_argument("--num_file_shards", type=int, default=1,
                       help="Writers per minute folder and event type (parallelism of the file write), 1..99.")
        g.add_argument("--max_message_bytes", type=int, default=256 * 1024,
                       help="Larger payloads go to the dead-letter table as oversized.")
        g.add_argument("--max_event_age_days", type=float, default=30.0,
                       help="Events older than this are dead-lettered (0 = no limit, e.g. for backfills).")
        g.add_argument("--max_future_skew_s", type=int, default=300,
                       help="Events stamped further in the future than this are dead-lettered.")
        g.add_argument("--bq_batch_size", type=int, default=500, help="Rows per insertAll request.")
        g.add_argument("--pubsub_id_label", default="off", choices=["on", "off"],
                       help="on: Dataflow dedups messages by their event_id attribute (only for producers that "
                            "always set it; the DirectRunner does not implement it). off (default): the job's own "
                            "dedup by event identity does it.")
        g.add_argument("--pubsub_timestamp_attribute", default="off", choices=["on", "off"],
                       help="on: Dataflow's watermark follows the event_time attribute (only for producers that "
                            "always set it: the connector fails every message without it). off (default): the "
                            "watermark follows publish time and each event is stamped with its body's event time.")
        g.add_argument("--analytics", default="on",
                       help="on (default): every streaming analytics step runs on the event trunk: alerts (anomaly "
                            "alerts to the alerts table and topic), metrics (metrics_per_minute) and sessions "
                            "(user_sessions). off: events, files, dead letters and conflicts only. Or a comma list "
                            f"of the steps wanted, e.g. alerts,metrics (of: {', '.join(ANALYTICS_PARTS)}).")
        g.add_argument("--metrics_emit_s", type=float, default=5.0,
                       help="Seconds of processing time between versions of a minute's metrics row while updates "
                            "arrive (pipeline/metrics.py).")
        g.add_argument("--erasure_refresh_s", type=int, default=60,
                       help="How often (seconds of processing time) the job re-reads the list of erased data "
                            "subjects (table erased_subjects, python -m gdpr), whose later events it drops.")
        g.add_argument("--session_gap_s", type=int, default=1800,
                       help="A user's session ends after this many seconds without an event (event time; "
                            "pipeline/sessions.py).")
        g.add_argument("--alert_threshold", type=int, default=ALERT_THRESHOLD,
                       help="An alert when one user has more than this many events in one minute of event time.")
        g.add_argument("--alert_buckets", type=int, default=4096,
                       help="Keys the alerts' per-user counts are spread over (python -m localrun: 64).")
        g.add_argument("--alerts_topic", default=None,
                       help="Pub/Sub topic of the alerts (default: projects/<project>/topics/backend-alerts-topic).")
        g.add_argument("--skip_preflight", action="store_true",
                       help="Do not check that the subscription, tables and bucket exist before starting.")

    # -- derived values ---------------------------------------------------------
    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_event_age=timedelta(days=self.max_event_age_days) if self.max_event_age_days else None,
            max_future_skew=timedelta(seconds=self.max_future_skew_s),
        )

    def lateness(self) -> LatenessPolicy:
        return LatenessPolicy(allowed_lateness_s=self.allowed_lateness_s, late_firing_delay_s=self.late_firing_delay_s)

    def outage_wait_s(self) -> float | None:
        """How long a sink waits out an outage inside a bundle: as long as it
        lasts on a local run (one worker, nobody else retries), a bounded
        time on Dataflow (then the runner retries the bundle)."""
        return DATAFLOW_MAX_WAIT_S if self.is_dataflow() else None

    def alerts_topic_path(self) -> str:
        return self.alerts_topic or f"projects/{self.table_project()}/topics/{ALERTS_TOPIC}"

    def analytics_parts(self) -> frozenset:
        """The analytics steps to run (--analytics)."""
        if self.analytics == "on":
            return frozenset(ANALYTICS_PARTS)
        if self.analytics == "off":
            return frozenset()
        return frozenset(p.strip() for p in self.analytics.split(",") if p.strip())

    def analytics_on(self, part: str | None = None) -> bool:
        """Any analytics step runs (or, with `part`, that one)."""
        parts = self.analytics_parts()
        return bool(parts) if part is None else part in parts

    def table_project(self) -> str:
        return self.bq_project or self.view_as(GoogleCloudOptions).project

    def is_dataflow(self) -> bool:
        return (self.view_as(StandardOptions).runner or "").lower().endswith("dataflowrunner")

    # -- validation -------------------------------------------------------------
    def validate_all(self, require_source: bool = True, streaming: bool = True) -> None:
        """Raise OptionsError naming the first bad option and how to fix it.
        `require_source`: the Pub/Sub subscription is needed (the stream);
        `streaming`: the job is the streaming one (the backfill is batch)."""
        problems = []
        project = self.table_project()
        if not project or not _PROJECT_RE.match(project):
            problems.append(f"--project/--bq_project {project!r} is not a valid project id (6-30 lowercase "
                            "letters, digits, hyphens)")
        if require_source:
            if not self.subscription:
                problems.append("--subscription is required (projects/<project>/subscriptions/<name>)")
            elif not _SUBSCRIPTION_RE.match(self.subscription):
                problems.append(f"--subscription {self.subscription!r} must look like projects/<project>/subscriptions/<name>")
        if not _DATASET_RE.match(self.dataset or ""):
            problems.append(f"--dataset {self.dataset!r} may hold only letters, digits and underscores")
        if not self.output_prefix:
            problems.append("--output_prefix is required (gs://<bucket>/output or a local folder)")
        elif "://" in self.output_prefix and not self.output_prefix.startswith("gs://"):
            problems.append(f"--output_prefix {self.output_prefix!r}: only gs:// and local folders are supported")
        elif self.is_dataflow() and not self.output_prefix.startswith("gs://"):
            problems.append("--output_prefix must be a gs:// path on Dataflow (workers have no shared disk)")
        if self.allowed_lateness_s < 0:
            problems.append("--allowed_lateness_s must be >= 0")
        if self.late_firing_delay_s < 0:
            problems.append("--late_firing_delay_s must be >= 0")
        if self.dedup_memory_s < 60:
            problems.append(f"--dedup_memory_s {self.dedup_memory_s} must be at least 60 (redeliveries come after "
                            "the 60 s ack deadline)")
        if not 1 <= self.dedup_buckets <= 1 << 24:
            problems.append(f"--dedup_buckets {self.dedup_buckets} must be between 1 and 16777216")
        if not 1 <= self.num_file_shards <= 99:
            problems.append("--num_file_shards must be between 1 and 99 (each shard numbers its files into the "
                            "folder's 4-digit sequence)")
        if not 1024 <= self.max_message_bytes <= 10 * 1024 * 1024:
            problems.append("--max_message_bytes must be between 1024 and 10485760 (Pub/Sub's own limit)")
        if not 1 <= self.bq_batch_size <= 10000:
            problems.append("--bq_batch_size must be between 1 and 10000 (insertAll limit)")
        if not 1 <= self.alert_buckets <= 1 << 24:
            problems.append(f"--alert_buckets {self.alert_buckets} must be between 1 and 16777216")
        unknown_parts = self.analytics_parts() - set(ANALYTICS_PARTS)
        if unknown_parts:
            problems.append(f"--analytics {self.analytics!r}: unknown step(s) {', '.join(sorted(unknown_parts))}; "
                            f"give on, off or a comma list of {', '.join(ANALYTICS_PARTS)}")
        if not 0.1 <= self.metrics_emit_s <= 3600:
            problems.append(f"--metrics_emit_s {self.metrics_emit_s} must be between 0.1 and 3600")
        if not 5 <= self.erasure_refresh_s <= 3600:
            problems.append(f"--erasure_refresh_s {self.erasure_refresh_s} must be between 5 and 3600")
        if not 60 <= self.session_gap_s <= 7 * 24 * 3600:
            problems.append(f"--session_gap_s {self.session_gap_s} must be between 60 and 604800")
        if self.alert_threshold < 1:
            problems.append("--alert_threshold must be at least 1")
        if self.alerts_topic and not _TOPIC_RE.match(self.alerts_topic):
            problems.append(f"--alerts_topic {self.alerts_topic!r} must look like projects/<project>/topics/<name>")
        if self.max_event_age_days < 0:
            problems.append("--max_event_age_days must be >= 0")
        if self.pubsub_id_label == "on" and not self.is_dataflow():
            problems.append("--pubsub_id_label=on works only on Dataflow (Beam's DirectRunner does not implement it)")
        if streaming and self.is_dataflow() and not self.view_as(StandardOptions).streaming:
            problems.append("--streaming is required on Dataflow (this is a streaming job)")
        if problems:
            raise OptionsError("invalid options:\n  - " + "\n  - ".join(problems))


_OUR_PACKAGES = ("pipeline.", "localrun.", "backfill.")


def _option_classes():
    """Every PipelineOptions view Beam would parse (its direct subclasses),
    the project's own first."""
    classes = list({str(c): c for c in PipelineOptions.__subclasses__()}.values())
    ours = [c for c in classes if c.__module__.startswith(_OUR_PACKAGES)]
    return ours, [c for c in classes if c not in ours]


def options_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of every option a run accepts: the project's groups first,
    then Beam's (runner, Dataflow, workers, ...), each with its help."""
    parser = _BeamArgumentParser(prog=prog, description=description, allow_abbrev=False, usage="%(prog)s [--option=value ...]",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ours, beams = _option_classes()
    for cls in ours:
        cls._add_argparse_args(parser)
    group = parser.add_argument_group("Apache Beam options (runner, Dataflow, workers; see Beam's documentation)")
    for cls in beams:
        cls._add_argparse_args(group)
    return parser


def parse_options(argv: list[str], prog: str, description: str, hint: dict | None = None) -> PipelineOptions:
    """PipelineOptions from argv, refusing what no option class defines
    (Beam itself only logs a warning and runs with the defaults). `--help`
    prints every option and exits. `hint`: option -> why it is refused here
    (an option of the other launcher)."""
    parser = options_parser(prog, description)
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        known = [s for action in parser._actions for s in action.option_strings]
        raise OptionsError("; ".join(unknown_arguments(unknown, known, hint)) + f" (every option: {prog} --help)")
    return PipelineOptions(argv)
