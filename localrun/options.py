"""Options only a local run has (`python -m localrun`). They are a separate
view over the same argv as `pipeline.options.EcommerceOptions`, so the job's
own options stay one class for every runner; `python -m pipeline` refuses
these with a pointer here."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import OptionsError


# Job options whose default differs on the local runner, unless given on the
# command line. The BundleBasedDirectRunner visits every key a stateful step
# has ever held on every bundle (watermark_manager.extract_transform_timers):
# with the production 16,384 dedup buckets each bundle costs more as the run
# touches more of them, and at 200 events/s the job falls behind after about
# 3 minutes (docs/performance.md, section 2). Dataflow keeps timers per key and
# does not scan, so production keeps its default; a local run remembers far
# fewer ids (rate x 2 x --dedup_memory_s / 256 stays small at local rates).
# The alerts' per-user counts likewise: each key's timer fires in a bundle of
# its own on the DirectRunner.
LOCAL_DEFAULTS = {"dedup_buckets": 256, "alert_buckets": 64}


def apply_local_defaults(options: PipelineOptions, argv: list[str]) -> dict:
    """Set LOCAL_DEFAULTS on the job's options where argv does not give them;
    returns what was set."""
    from pipeline.options import EcommerceOptions

    given = {arg.split("=", 1)[0][2:] for arg in argv if arg.startswith("--")}
    opts = options.view_as(EcommerceOptions)
    applied = {}
    for name, value in LOCAL_DEFAULTS.items():
        if name not in given:
            setattr(opts, name, value)
            applied[name] = value
    return applied


class LocalRunOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("local run (python -m localrun only)")
        g.add_argument("--local_pull_max_messages", type=int, default=1000,
                       help="Messages per Pub/Sub pull (Beam's DirectRunner takes 10). 0 keeps Beam's behaviour.")
        g.add_argument("--checkpoint_file", default=None,
                       help="Where the job records its safe replay point (see localrun/recovery.py).")
        g.add_argument("--replay_from", default="",
                       help="Seek the subscription before starting: 'auto' (from --checkpoint_file) or an RFC 3339 "
                            "time. Messages published since then are delivered again; what BigQuery already holds "
                            "is not written twice.")
        g.add_argument("--replay_margin_s", type=int, default=120,
                       help="How far behind now the recorded safe replay point stays (covers the job's lag).")
        g.add_argument("--run_duration_s", type=int, default=0,
                       help="Stop the job after this many seconds (0 = run until Ctrl-C or SIGTERM).")
        g.add_argument("--metrics_out", default=None, help="Write the job's counters as JSON here at the end.")

    def validate_local(self) -> None:
        problems = []
        if not 0 <= self.local_pull_max_messages <= 1000:
            problems.append("--local_pull_max_messages must be between 0 and 1000 (Pub/Sub's pull limit)")
        if self.replay_from == "auto" and not self.checkpoint_file:
            problems.append("--replay_from=auto needs --checkpoint_file")
        if self.replay_margin_s < 10:
            problems.append("--replay_margin_s must be at least 10")
        if self.run_duration_s < 0:
            problems.append("--run_duration_s must be >= 0")
        if problems:
            raise OptionsError("invalid options:\n  - " + "\n  - ".join(problems))
