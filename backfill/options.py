"""Options only the backfill has (`python -m backfill`); the rest are the
job's own (`pipeline.options.EcommerceOptions`: dataset, output prefix,
shards, limits), so a backfill writes exactly what the stream writes."""

from __future__ import annotations

import re

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import OptionsError

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class BackfillOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("backfill (python -m backfill only)")
        g.add_argument("--input", action="append", default=None,
                       help="History to load: a file pattern on s3://, gs:// or a local folder; `**` matches every "
                            "folder below (s3://bucket/history/**). Repeat for several. Newline-delimited JSON or "
                            "JSON arrays, gzip or plain, the brief's events.")
        g.add_argument("--run_id", default=None,
                       help="Names this backfill's staging tables (default: a new id). Re-running under the same id "
                            "after a crash appends to them; the merge takes each row once.")
        g.add_argument("--keep_staging", action="store_true",
                       help="Keep the staging tables after the merge (they expire after 7 days).")

    def validate_backfill(self) -> None:
        problems = []
        if not self.input:
            problems.append("--input is required (s3://bucket/prefix/**, gs://bucket/prefix/** or a local path)")
        for pattern in self.input or []:
            if "://" in pattern and not pattern.startswith(("s3://", "gs://")):
                problems.append(f"--input {pattern!r}: only s3://, gs:// and local paths are read")
        if self.run_id is not None and not _RUN_ID_RE.match(self.run_id):
            problems.append(f"--run_id {self.run_id!r}: 1-64 letters, digits, '-' or '_'")
        if problems:
            raise OptionsError("invalid options:\n  - " + "\n  - ".join(problems))
