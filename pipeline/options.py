"""One options class for every run: local (BundleBasedDirectRunner against the
emulators), Dataflow, the flex template and the tests.

`validate()` checks every value before the graph is built and raises
`OptionsError` with a message that says what to fix.
"""

from __future__ import annotations

import re
from datetime import timedelta

from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions, StandardOptions)

from pipeline.validation import Limits

_SUBSCRIPTION_RE = re.compile(r"^projects/[a-z][-a-z0-9]{4,61}[a-z0-9]/subscriptions/[A-Za-z][-A-Za-z0-9._~%+]{2,254}$")
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
                            "buckets stays below about 100 (1,000,000 events/minute: 524288).")
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
        g.add_argument("--local_pull_max_messages", type=int, default=1000,
                       help="DirectRunner only: messages per Pub/Sub pull (Beam's own reader takes 10). "
                            "0 keeps Beam's behaviour. Ignored on Dataflow.")
        g.add_argument("--checkpoint_file", default=None,
                       help="Local runs: where the job records its safe replay point (see pipeline/recovery.py).")
        g.add_argument("--replay_from", default="",
                       help="Local runs: seek the subscription before starting: 'auto' (from --checkpoint_file) "
                            "or an RFC 3339 time. Messages published since then are delivered again.")
        g.add_argument("--replay_margin_s", type=int, default=120,
                       help="How far behind now the recorded safe replay point stays (covers the job's lag).")
        g.add_argument("--run_duration_s", type=int, default=0,
                       help="Local runs: stop the job after this many seconds (0 = run until interrupted).")
        g.add_argument("--metrics_out", default=None, help="Local runs: write the job's counters as JSON here at the end.")
        g.add_argument("--skip_preflight", action="store_true",
                       help="Do not check that the subscription, tables and bucket exist before starting.")

    # -- derived values ---------------------------------------------------------
    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_event_age=timedelta(days=self.max_event_age_days) if self.max_event_age_days else None,
            max_future_skew=timedelta(seconds=self.max_future_skew_s),
        )

    def table_project(self) -> str:
        return self.bq_project or self.view_as(GoogleCloudOptions).project

    def is_dataflow(self) -> bool:
        return (self.view_as(StandardOptions).runner or "").lower().endswith("dataflowrunner")

    # -- validation -------------------------------------------------------------
    def validate_all(self, require_source: bool = True) -> None:
        """Raise OptionsError naming the first bad option and how to fix it."""
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
        if self.max_event_age_days < 0:
            problems.append("--max_event_age_days must be >= 0")
        if not 0 <= self.local_pull_max_messages <= 1000:
            problems.append("--local_pull_max_messages must be between 0 and 1000 (Pub/Sub's pull limit)")
        if self.replay_from == "auto" and not self.checkpoint_file:
            problems.append("--replay_from=auto needs --checkpoint_file")
        if self.replay_from and self.is_dataflow():
            problems.append("--replay_from is for local runs; on Dataflow seek the subscription to a snapshot "
                            "(docs/operations.md)")
        if self.pubsub_id_label == "on" and not self.is_dataflow():
            problems.append("--pubsub_id_label=on works only on Dataflow (Beam's DirectRunner does not implement it)")
        if self.run_duration_s < 0:
            problems.append("--run_duration_s must be >= 0")
        if self.is_dataflow() and not self.view_as(StandardOptions).streaming:
            problems.append("--streaming is required on Dataflow (this is a streaming job)")
        if problems:
            raise OptionsError("invalid options:\n  - " + "\n  - ".join(problems))
