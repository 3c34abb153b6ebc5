"""`python -m pipeline`: check and submit the streaming job to Dataflow.

    python -m pipeline --runner=DataflowRunner --streaming --project=my-project --region=europe-west1 \\
        --temp_location=gs://my-bucket/tmp --subscription=projects/my-project/subscriptions/backend-events-topic-sub \\
        --dataset=ecommerce --output_prefix=gs://my-bucket/output

(run_dataflow.sh and the flex template's main.py call this.) Before anything
is submitted: every option is parsed (an unknown one is refused with the
closest name), every value validated, credentials and the subscription,
tables and bucket checked, each within seconds with a message that says
what to fix. A local run on the emulators is `python -m localrun`.
"""

from __future__ import annotations

import logging
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipeline.options import EcommerceOptions, OptionsError, parse_options
from schemas import (ALERTS_TABLE, CONFLICTS_TABLE, DEAD_LETTER_TABLE, ERASED_SUBJECTS_TABLE, FILES_WRITTEN_TABLE,
                     METRICS_TABLE, SESSIONS_TABLE, event_specs)

_log = logging.getLogger(__name__)
PROG = "python -m pipeline"
LOCAL_ONLY = "an option of local runs: python -m localrun (on Dataflow: drain/update and snapshots, docs/operations.md)"
LOCAL_OPTIONS = {f"--{name}": LOCAL_ONLY for name in ("checkpoint_file", "replay_from", "replay_margin_s",
                                                      "run_duration_s", "metrics_out", "local_pull_max_messages")}


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam.runners", "apache_beam.io.gcp", "apache_beam.internal.gcp", "google", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def check_credentials() -> None:
    """Application Default Credentials exist: without them every later step
    fails after minutes of retries. On a laptop (NO_GCE_CHECK=True, as the
    project's scripts set it) this reads files only; on GCE or in the flex
    template launcher it may ask the metadata server, which is where the
    credentials are there."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise OptionsError("no Google credentials: run `gcloud auth application-default login` (or set "
                           "GOOGLE_APPLICATION_CREDENTIALS); for the local stack use python -m localrun") from None


def preflight(opts: EcommerceOptions, bigquery_client_factory, storage_client_factory) -> None:
    """Raise OptionsError naming every resource that is missing or
    unreachable. Each check has a short timeout and no silent retries."""
    from concurrent.futures import ThreadPoolExecutor

    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    project = opts.table_project()

    def subscription() -> list[str]:
        try:
            sub = pubsub_v1.SubscriberClient()  # follows PUBSUB_EMULATOR_HOST by itself
            try:
                sub.get_subscription(request={"subscription": opts.subscription}, timeout=5, retry=None)
            finally:
                sub.close()
        except gexc.NotFound:
            return [f"Pub/Sub subscription {opts.subscription} does not exist (run provisioning)"]
        except Exception as exc:  # noqa: BLE001
            return [f"cannot reach Pub/Sub to check {opts.subscription}: {type(exc).__name__}: {exc}"[:300]]
        return []

    def alerts_topic() -> list[str]:
        if not opts.analytics_on("alerts"):
            return []
        topic = opts.alerts_topic_path()
        try:
            pub = pubsub_v1.PublisherClient()
            pub.get_topic(request={"topic": topic}, timeout=5, retry=None)
        except gexc.NotFound:
            return [f"Pub/Sub topic {topic} does not exist (run provisioning, or --analytics=off)"]
        except Exception as exc:  # noqa: BLE001
            return [f"cannot reach Pub/Sub to check {topic}: {type(exc).__name__}: {exc}"[:300]]
        return []

    def tables() -> list[str]:
        bq, out = bigquery_client_factory(project), []
        wanted = [spec.name for spec in event_specs().values()] + [DEAD_LETTER_TABLE, CONFLICTS_TABLE,
                                                                   FILES_WRITTEN_TABLE, ERASED_SUBJECTS_TABLE]
        analytics = (("alerts", ALERTS_TABLE), ("metrics", METRICS_TABLE), ("sessions", SESSIONS_TABLE))
        for table in wanted + [table for part, table in analytics if opts.analytics_on(part)]:
            try:
                bq.get_table(f"{project}.{opts.dataset}.{table}", timeout=5, retry=None)
            except gexc.NotFound:
                out.append(f"BigQuery table {project}.{opts.dataset}.{table} does not exist (run provisioning)")
            except Exception as exc:  # noqa: BLE001
                return out + [f"cannot reach BigQuery to check {table}: {type(exc).__name__}: {exc}"[:300]]
        return out

    def bucket() -> list[str]:
        if not opts.output_prefix.startswith("gs://"):
            return []
        name = opts.output_prefix[5:].split("/", 1)[0]
        try:
            storage_client_factory(project).get_bucket(name, timeout=5, retry=None)
        except gexc.NotFound:
            return [f"bucket gs://{name} does not exist (run provisioning)"]
        except Exception as exc:  # noqa: BLE001
            return [f"cannot reach Cloud Storage to check gs://{name}: {type(exc).__name__}: {exc}"[:300]]
        return []

    # The services at once: an unreachable one costs its 5 s timeout once, not once per check.
    with ThreadPoolExecutor(max_workers=4) as pool:
        missing = [line for found in pool.map(lambda check: check(), (subscription, alerts_topic, tables, bucket))
                   for line in found]
    if missing:
        raise OptionsError("missing resources:\n  - " + "\n  - ".join(missing))


def run(argv=None) -> int:
    from pipeline.clients import bigquery_client, storage_client
    from pipeline.graph import Sinks, build_pipeline

    configure_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        options: PipelineOptions = parse_options(argv, PROG, __doc__, hint=LOCAL_OPTIONS)
        opts = options.view_as(EcommerceOptions)
        if not opts.is_dataflow():
            raise OptionsError("--runner=DataflowRunner is what this command submits to; for a local run on the "
                               "emulators use python -m localrun")
        opts.validate_all()
        dry_run = str(options.view_as(TestOptions).dry_run).lower() in ("true", "1", "yes")
        if not dry_run:
            check_credentials()
            if not opts.skip_preflight:
                preflight(opts, bigquery_client, storage_client)
    except OptionsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options.view_as(StandardOptions).streaming = True
    pipeline = beam.Pipeline(options=options)
    from pipeline.erasure import ErasedSubjects

    build_pipeline(pipeline, opts, Sinks.production(opts),
                   erased=ErasedSubjects(opts.table_project(), opts.dataset, opts.erasure_refresh_s))
    pipeline.run()
    if dry_run:
        _log.info("dry run: the Dataflow job graph was built; nothing was submitted")
    else:
        _log.info("submitted to Dataflow; follow it in the console or with gcloud dataflow jobs list")
    return 0
