"""python -m localstack up|down|status|env

  up      start the four emulators (Pub/Sub, BigQuery, Cloud Storage, S3) on
          free loopback ports (or --*-port), provision topic, subscription,
          dataset, tables, views, bucket and the S3 history bucket,
          and print the environment clients need (also in .local/stack/env.sh)
  down    stop exactly the processes `up` started (by PID)
  status  show what is running
  env     print `export` lines for the running stack
"""

from __future__ import annotations

import json
import sys

from common.cli import Parser
from localstack.services import StackError, pid_alive
from localstack.stack import (
    DEFAULT_WORKDIR,
    LocalStack,
    read_state,
    stop_from_state,
    write_state,
)
from schemas.contract import SUBSCRIPTION, TOPIC

DEFAULTS = {"dataset": "ecommerce", "topic": TOPIC, "subscription": SUBSCRIPTION, "bucket": "local-bucket",
            "history_bucket": "local-history"}


def _exports(env: dict) -> str:
    return "\n".join(f"export {k}={v}" for k, v in env.items())


def main(argv=None) -> int:
    parser = Parser("python -m localstack", __doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"], help="what to do (see above)")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="emulator data, logs and state file")
    parser.add_argument("--project", default="local-project", help="project id the emulators serve")
    parser.add_argument("--pubsub-port", type=int, default=0, help="Pub/Sub emulator port (default: a free one)")
    parser.add_argument("--bigquery-port", type=int, default=0, help="BigQuery emulator port (default: a free one)")
    parser.add_argument("--gcs-port", type=int, default=0, help="Cloud Storage emulator port (default: a free one)")
    parser.add_argument("--s3-port", type=int, default=0, help="S3 emulator (moto) port (default: a free one)")
    parser.add_argument("--no-provision", action="store_true",
                        help="start the emulators only (no topic, subscription, dataset, tables or bucket)")
    args = parser.parse_args(argv)

    state = read_state(args.workdir)
    running = state and any(s.get("pid") and pid_alive(s["pid"]) for s in state["services"])
    if args.command == "down":
        stopped = stop_from_state(args.workdir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.command in ("status", "env"):
        if not running:
            print("local stack is not running (python -m localstack up)", file=sys.stderr)
            return 1
        print(_exports(state["env"]) if args.command == "env" else json.dumps(state, indent=2))
        return 0

    if running:
        print("local stack is already running; `python -m localstack down` first", file=sys.stderr)
        return 1
    stack = LocalStack(workdir=args.workdir, project=args.project, pubsub_port=args.pubsub_port,
                       bigquery_port=args.bigquery_port, gcs_port=args.gcs_port, s3_port=args.s3_port)
    try:
        stack.start()
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        write_state(stack)
        if not args.no_provision:
            stack.apply_env()
            from provision import ensure_s3_bucket, provision

            provision(stack.project, DEFAULTS["dataset"], DEFAULTS["topic"], DEFAULTS["subscription"],
                      DEFAULTS["bucket"])
            ensure_s3_bucket(DEFAULTS["history_bucket"])
        (stack.workdir / "env.sh").write_text(_exports(stack.env()) + "\n")
    except BaseException:
        stack.stop()
        stop_from_state(args.workdir)
        raise
    print(_exports(stack.env()))
    print(f"# also written to {stack.workdir / 'env.sh'}; stop with: python -m localstack down", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
