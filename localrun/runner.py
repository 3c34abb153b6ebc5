"""`python -m localrun`: the streaming job on this machine, against the local stack.

    source .local/stack/env.sh      # after: python -m localstack up
    python -m localrun --project=local-project \\
        --subscription=projects/local-project/subscriptions/backend-events-topic-sub \\
        --dataset=ecommerce --output_prefix=gs://local-bucket/output [--run_duration_s=600]

The graph is the Dataflow job's (`pipeline.graph`), on Beam's
BundleBasedDirectRunner (the only local runner that really streams). Before
it starts, in seconds: every option parsed (unknown ones refused with the
closest name), the emulator environment and each emulator checked, the
subscription, tables and bucket checked. It prints `job running` once the
graph runs, and its counters when it stops (Ctrl-C, SIGTERM or
--run_duration_s).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from common import clients
from localrun.options import LocalRunOptions, apply_local_defaults
from pipeline.graph import Sinks, build_pipeline
from pipeline.launch import configure_logging, preflight
from pipeline.options import EcommerceOptions, OptionsError, parse_options

_log = logging.getLogger(__name__)
PROG = "python -m localrun"
RUNNING = "job running"  # the line tests and the demo wait for (pid follows)


def run(argv=None) -> int:
    configure_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("NO_GCE_CHECK", "True")
    try:
        options = parse_options(argv, PROG, __doc__)
        if not options.view_as(StandardOptions).runner:
            options.view_as(StandardOptions).runner = "BundleBasedDirectRunner"
        apply_local_defaults(options, argv)
        opts, local = options.view_as(EcommerceOptions), options.view_as(LocalRunOptions)
        if opts.is_dataflow():
            raise OptionsError("this command runs the job locally; submit to Dataflow with python -m pipeline "
                               "(or run_dataflow.sh)")
        opts.validate_all()
        local.validate_local()
        clients.check_services(require_emulators=True)
        if not opts.skip_preflight:
            preflight(opts, clients.bigquery_client, clients.storage_client)
    except (OptionsError, clients.SetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options.view_as(StandardOptions).streaming = True
    clients.use_anonymous_beam_credentials()

    from localrun.bundle_metrics import count_every_bundle
    from localrun.dofn_specs import cache_dofn_specs
    from localrun.gc_policy import freeze_survivors
    from localrun.pubsub_pull import enlarge_pulls
    from localrun.recovery import Checkpointer, resolve_replay_from, seek_subscription, stored_since

    if local.local_pull_max_messages:
        enlarge_pulls(local.local_pull_max_messages)
    count_every_bundle()
    cache_dofn_specs()
    freeze_survivors()
    try:
        replay_from = resolve_replay_from(local.replay_from, local.checkpoint_file)
    except ValueError as err:
        print(f"error: --replay_from: {err}", file=sys.stderr)
        return 2
    seen = None
    if replay_from:
        # What the replay brings again and BigQuery already holds is not inserted
        # twice (files: each minute folder is read back before it is added to).
        seen = stored_since(clients.bigquery_client(opts.table_project()), opts.table_project(), opts.dataset,
                            replay_from)
        seek_subscription(opts.subscription, replay_from)
    checkpointer = None
    if local.checkpoint_file:
        checkpointer = Checkpointer(local.checkpoint_file, local.replay_margin_s, initial=replay_from).start()

    pipeline = beam.Pipeline(options=options)
    from localrun import clients as step_clients  # one client per thread, not per bundle
    from pipeline.erasure import ErasedSubjects

    build_pipeline(pipeline, opts, Sinks.production(opts, step_clients.bigquery_client, step_clients.storage_client),
                   seen=seen, erased=ErasedSubjects(opts.table_project(), opts.dataset, opts.erasure_refresh_s,
                                                    step_clients.bigquery_client))
    result = pipeline.run()
    _log.info("%s (pid %d); stop it with Ctrl-C or SIGTERM", RUNNING, os.getpid())
    state = wait_local(result, local.run_duration_s)
    if checkpointer:
        checkpointer.stop()
    counters = metrics_summary(result)
    _log.info("job %s; counters: %s", state, json.dumps(counters, sort_keys=True))
    if local.metrics_out:
        Path(local.metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(local.metrics_out).write_text(json.dumps({"state": state, "counters": counters}, indent=2,
                                                      sort_keys=True))
    return 0 if state != "FAILED" else 1


def wait_local(result, duration_s: int) -> str:
    """Run a local (DirectRunner) job until it fails, `duration_s` passes, or
    SIGINT/SIGTERM arrives; then cancel it. The DirectRunner supports neither
    a duration nor a clean drain, so this is the local stop procedure: events
    still held for a minute folder's next file are not written (BigQuery has
    them), and the subscription (which retains acked messages) lets a restart
    with --replay_from replay them into their folders."""
    finished = threading.Event()
    failure: list[BaseException] = []
    stop = threading.Event()

    def waiter():
        try:
            result.wait_until_finish()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)
        finally:
            finished.set()

    def on_signal(signum, frame):
        _log.info("signal %s: stopping the job", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    threading.Thread(target=waiter, name="beam-wait", daemon=True).start()
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while not finished.is_set() and not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                _log.info("run duration of %ss reached", duration_s)
                break
            finished.wait(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        _log.error("job failed: %s", failure[0], exc_info=failure[0])
        return "FAILED"
    if not finished.is_set():
        result.cancel()
        return "CANCELLED"
    return "DONE"


def metrics_summary(result) -> dict:
    """Counter values and distributions, by name (summed over steps). A
    cancelled local job may have a last bundle whose work is done but whose
    commit never came, so each counter reports the larger of its committed
    and attempted values."""
    out = {}
    try:
        query = result.metrics().query()
    except Exception:  # noqa: BLE001 - metrics are best effort on a cancelled job
        return out
    for counter in query.get("counters", []):
        key = f"{counter.key.metric.namespace}.{counter.key.metric.name}"
        out[key] = out.get(key, 0) + max(counter.committed or 0, counter.attempted or 0)
    for dist in query.get("distributions", []):
        value = dist.committed if dist.committed and dist.committed.count else dist.attempted
        if value and value.count:
            key = f"{dist.key.metric.namespace}.{dist.key.metric.name}"
            out[key] = {"count": value.count, "min": value.min, "max": value.max, "mean": round(value.mean, 1)}
    return out
