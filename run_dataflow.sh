#!/usr/bin/env bash
# Deploy the streaming job to Google Cloud Dataflow.
#
#   ./run_dataflow.sh provision   create topic, subscription, dataset, tables (ddl/), views, bucket and the
#                                 warehouse's nightly scheduled query (deploy/scheduled_queries/) (idempotent)
#   ./run_dataflow.sh deploy      provision, then launch the streaming job
#   ./run_dataflow.sh update      replace the running job in place (same JOB_NAME), keeping its state
#   ./run_dataflow.sh drain       drain the running job (stop reading, finish what is in flight)
#   ./run_dataflow.sh template    build the flex template image and spec (Dockerfile, metadata.json)
#   ./run_dataflow.sh dry-run     build the full Dataflow job graph offline, no credentials, nothing created
#   ./run_dataflow.sh monitoring  create the Cloud Monitoring dashboard and alert policies (deploy/monitoring/)
#                                 for JOB_NAME; NOTIFICATION_CHANNEL (projects/P/notificationChannels/ID) optional
#   ./run_dataflow.sh backfill PATTERN... [--job options]
#                                 load history (s3://... or gs://..., ** for every folder below) as a Dataflow
#                                 batch job through the job's rules, then merge it into the tables (python -m
#                                 backfill); S3 needs --s3_access_key_id/--s3_secret_access_key/--s3_region_name
#   ./run_dataflow.sh backfill-dry-run PATTERN...   build the backfill's Dataflow graph offline
#
# Settings come from the environment (or a file named by ENV_FILE):
#   PROJECT (required), REGION (required), BUCKET (required, without gs://),
#   DATASET=ecommerce, TOPIC=backend-events-topic, SUBSCRIPTION=backend-events-topic-sub (the brief's names), JOB_NAME=ecommerce-events,
#   STREAMING_MODE=exactly_once|at_least_once (default exactly_once),
#   MAX_WORKERS=10, MACHINE_TYPE=n2-standard-2, NUM_FILE_SHARDS=4,
#   IMAGE (flex template / worker image, default REGION-docker.pkg.dev/PROJECT/dataflow/ecommerce-pipeline:VERSION)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

die() { printf 'run_dataflow.sh: %s\n' "$*" >&2; exit 2; }
say() { printf '[run_dataflow] %s\n' "$*" >&2; }

COMMAND="${1:-}"
shift || true  # further arguments are passed to the job (deploy, update, dry-run)
[[ -n "$COMMAND" ]] || die "usage: $0 provision|deploy|update|drain|template|dry-run|monitoring|backfill|backfill-dry-run (see the header of this file)"
if [[ -n "${ENV_FILE:-}" ]]; then
  [[ -f "$ENV_FILE" ]] || die "ENV_FILE $ENV_FILE does not exist"
  # shellcheck disable=SC1090
  source "$ENV_FILE"
fi

PROJECT="${PROJECT:-}"
REGION="${REGION:-}"
BUCKET="${BUCKET:-}"
DATASET="${DATASET:-ecommerce}"
TOPIC="${TOPIC:-backend-events-topic}"
SUBSCRIPTION="${SUBSCRIPTION:-backend-events-topic-sub}"
# Off by default: the brief's producer sets no attributes (README "The message contract").
PUBSUB_ID_LABEL="${PUBSUB_ID_LABEL:-off}"
PUBSUB_TIMESTAMP_ATTRIBUTE="${PUBSUB_TIMESTAMP_ATTRIBUTE:-off}"
JOB_NAME="${JOB_NAME:-ecommerce-events}"
STREAMING_MODE="${STREAMING_MODE:-exactly_once}"
MAX_WORKERS="${MAX_WORKERS:-10}"
MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-2}"
NUM_FILE_SHARDS="${NUM_FILE_SHARDS:-4}"
VERSION="$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/dataflow/ecommerce-pipeline:${VERSION}}"
PYTHON="${PYTHON:-.venv/bin/python}"

# -- input checks ---------------------------------------------------------------
[[ "$PROJECT" =~ ^[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] || die "set PROJECT to your Google Cloud project id (got '${PROJECT}')"
[[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]$ ]] || die "set REGION to a Dataflow region such as europe-west1 (got '${REGION}')"
[[ "$BUCKET" =~ ^[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9]$ ]] || die "set BUCKET to a bucket name without gs:// (got '${BUCKET}')"
[[ "$DATASET" =~ ^[A-Za-z0-9_]+$ ]] || die "DATASET may hold only letters, digits and underscores (got '${DATASET}')"
[[ "$JOB_NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] || die "JOB_NAME must be lowercase letters, digits and hyphens (got '${JOB_NAME}')"
[[ "$MAX_WORKERS" =~ ^[0-9]+$ ]] || die "MAX_WORKERS must be a number (got '${MAX_WORKERS}')"
case "$STREAMING_MODE" in
  exactly_once) MODE_OPTIONS=() ;;
  at_least_once) MODE_OPTIONS=(--dataflow_service_options=streaming_mode_at_least_once) ;;
  *) die "STREAMING_MODE must be exactly_once or at_least_once (got '${STREAMING_MODE}')" ;;
esac
[[ -x "$PYTHON" ]] || die "$PYTHON not found: run scripts/bootstrap.sh first (or set PYTHON)"

need_gcloud() {
  command -v gcloud >/dev/null 2>&1 || die "gcloud is not installed: https://cloud.google.com/sdk/docs/install"
  gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null | grep -q . \
    || die "gcloud has no active account: run 'gcloud auth login' and 'gcloud auth application-default login'"
}

# The one options list, shared by deploy, update and dry-run.
job_options() {
  printf '%s\n' \
    --runner=DataflowRunner \
    "--project=${PROJECT}" "--region=${REGION}" \
    --streaming --enable_streaming_engine \
    "--job_name=${JOB_NAME}" \
    "--temp_location=gs://${BUCKET}/tmp" "--staging_location=gs://${BUCKET}/staging" \
    --setup_file=./setup.py \
    --autoscaling_algorithm=THROUGHPUT_BASED "--max_num_workers=${MAX_WORKERS}" \
    "--worker_machine_type=${MACHINE_TYPE}" \
    "--subscription=projects/${PROJECT}/subscriptions/${SUBSCRIPTION}" \
    "--dataset=${DATASET}" "--output_prefix=gs://${BUCKET}/output" \
    "--num_file_shards=${NUM_FILE_SHARDS}" \
    "--pubsub_id_label=${PUBSUB_ID_LABEL}" "--pubsub_timestamp_attribute=${PUBSUB_TIMESTAMP_ATTRIBUTE}" \
    --max_cache_memory_usage_mb=0 \
    "${MODE_OPTIONS[@]}"
}

# The backfill's options: a batch job of its own name, the same dataset, bucket and file shards.
backfill_options() {
  printf '%s\n' \
    --runner=DataflowRunner \
    "--project=${PROJECT}" "--region=${REGION}" \
    "--job_name=${JOB_NAME}-backfill-$(date -u +%Y%m%d-%H%M%S)" \
    "--temp_location=gs://${BUCKET}/tmp" "--staging_location=gs://${BUCKET}/staging" \
    --setup_file=./setup.py \
    "--max_num_workers=${MAX_WORKERS}" "--worker_machine_type=${MACHINE_TYPE}" \
    "--dataset=${DATASET}" "--output_prefix=gs://${BUCKET}/output" \
    "--num_file_shards=${NUM_FILE_SHARDS}" \
    --max_cache_memory_usage_mb=0
}

backfill_inputs() {  # PATTERN... [--option ...] -> --input=PATTERN lines, then the options as given
  while [[ $# -gt 0 && "$1" != --* ]]; do printf -- '--input=%s\n' "$1"; shift; done
  [[ $# -eq 0 ]] || printf '%s\n' "$@"
}

provision() {
  need_gcloud
  say "enabling APIs (idempotent)"
  gcloud services enable dataflow.googleapis.com pubsub.googleapis.com bigquery.googleapis.com storage.googleapis.com \
    --project "$PROJECT"
  if ! gcloud storage buckets describe "gs://${BUCKET}" --project "$PROJECT" >/dev/null 2>&1; then
    say "creating bucket gs://${BUCKET}"
    gcloud storage buckets create "gs://${BUCKET}" --project "$PROJECT" --location "$REGION" --uniform-bucket-level-access
  fi
  say "applying the bucket lifecycle (deploy/gcs-lifecycle.json: Nearline after 30 days, Coldline after 90)"
  gcloud storage buckets update "gs://${BUCKET}" --project "$PROJECT" --lifecycle-file=deploy/gcs-lifecycle.json
  say "creating topic, subscription (retains acked messages for replay), dataset, tables from ddl/, views"
  # Same provisioning code as the local stack; tables come from ddl/tables/*.sql.
  "$PYTHON" -m provision --project "$PROJECT" --dataset "$DATASET" --topic "$TOPIC" \
    --subscription "$SUBSCRIPTION" --tables-via ddl --location "$REGION"
  scheduled_queries
}

# The warehouse's nightly build: the steps of sql/warehouse/ as one script (python -m warehouse
# scheduled-queries), named and scheduled by deploy/scheduled_queries/warehouse_daily.json; created
# once, updated in place when the SQL changes.
scheduled_queries() {
  command -v bq >/dev/null 2>&1 || die "bq is not installed (it comes with the Google Cloud SDK)"
  gcloud services enable bigquerydatatransfer.googleapis.com --project "$PROJECT"
  local name schedule params existing id
  IFS=$'\t' read -r name schedule params < <("$PYTHON" -m warehouse scheduled-queries \
    --project "$PROJECT" --dataset "$DATASET")
  existing="$(bq ls --transfer_config --transfer_location="$REGION" --project_id="$PROJECT" --format=json)"
  id="$("$PYTHON" -c 'import json, sys
print(next((c["name"] for c in json.loads(sys.stdin.read() or "[]") if c.get("displayName") == sys.argv[1]), ""))' \
    "$name" <<<"$existing")"
  if [[ -n "$id" ]]; then
    say "updating the scheduled query '${name}' (${schedule} UTC)"
    bq update --transfer_config --schedule="$schedule" --params="$params" "$id" >/dev/null
  else
    say "creating the scheduled query '${name}' (${schedule} UTC): the warehouse tables for yesterday"
    bq mk --transfer_config --project_id="$PROJECT" --location="$REGION" --data_source=scheduled_query \
      --display_name="$name" --schedule="$schedule" --params="$params" >/dev/null
  fi
}

running_job_id() {
  gcloud dataflow jobs list --project "$PROJECT" --region "$REGION" --status=active \
    --filter="name=${JOB_NAME}" --format='value(id)' | head -n 1
}

case "$COMMAND" in
  dry-run)
    say "building the Dataflow job graph offline (nothing is submitted)"
    mapfile -t OPTIONS < <(job_options)
    NO_GCE_CHECK=True "$PYTHON" -m pipeline "${OPTIONS[@]}" --dry_run=True --skip_preflight "$@"
    ;;
  provision)
    provision
    ;;
  deploy)
    provision
    [[ -z "$(running_job_id)" ]] || die "job ${JOB_NAME} is already running: use '$0 update' or '$0 drain'"
    mapfile -t OPTIONS < <(job_options)
    say "launching ${JOB_NAME} (${STREAMING_MODE})"
    "$PYTHON" -m pipeline "${OPTIONS[@]}" "$@"
    ;;
  update)
    need_gcloud
    [[ -n "$(running_job_id)" ]] || die "no running job named ${JOB_NAME} to update"
    mapfile -t OPTIONS < <(job_options)
    say "updating ${JOB_NAME} in place (state and in-flight data are kept)"
    "$PYTHON" -m pipeline "${OPTIONS[@]}" --update "$@"
    ;;
  drain)
    need_gcloud
    JOB_ID="$(running_job_id)"
    [[ -n "$JOB_ID" ]] || die "no running job named ${JOB_NAME}"
    say "draining ${JOB_NAME} (${JOB_ID}); it stops reading and finishes open windows"
    gcloud dataflow jobs drain "$JOB_ID" --project "$PROJECT" --region "$REGION"
    ;;
  template)
    need_gcloud
    say "building image ${IMAGE} with Cloud Build"
    gcloud builds submit --project "$PROJECT" --region "$REGION" --tag "$IMAGE" .
    say "writing the flex template spec to gs://${BUCKET}/templates/ecommerce-pipeline.json"
    gcloud dataflow flex-template build "gs://${BUCKET}/templates/ecommerce-pipeline.json" \
      --project "$PROJECT" --image "$IMAGE" --sdk-language PYTHON --metadata-file metadata.json
    say "run it with: gcloud dataflow flex-template run ${JOB_NAME} --region ${REGION} \\"
    say "  --template-file-gcs-location gs://${BUCKET}/templates/ecommerce-pipeline.json \\"
    say "  --parameters subscription=projects/${PROJECT}/subscriptions/${SUBSCRIPTION},output_prefix=gs://${BUCKET}/output,sdk_container_image=${IMAGE}"
    ;;
  monitoring)
    need_gcloud
    [[ -n "$PROJECT" ]] || die "PROJECT is required"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # The files name the job as ${JOB_NAME}; nothing else is substituted.
    sed "s/\${JOB_NAME}/${JOB_NAME}/g" deploy/monitoring/dashboard.json > "$tmp/dashboard.json"
    say "creating dashboard for ${JOB_NAME}"
    gcloud monitoring dashboards create --project "$PROJECT" --config-from-file "$tmp/dashboard.json"
    for policy in deploy/monitoring/alert_policies/*.json; do
      sed "s/\${JOB_NAME}/${JOB_NAME}/g" "$policy" > "$tmp/policy.json"
      channel=()
      [[ -z "${NOTIFICATION_CHANNEL:-}" ]] || channel=(--notification-channels="$NOTIFICATION_CHANNEL")
      say "creating alert policy $(basename "$policy" .json)"
      gcloud alpha monitoring policies create --project "$PROJECT" --policy-from-file "$tmp/policy.json" "${channel[@]}"
    done
    ;;
  backfill|backfill-dry-run)
    [[ $# -ge 1 && "$1" != --* ]] || die "usage: $0 ${COMMAND} PATTERN [PATTERN ...] [--option=value ...] (s3://bucket/prefix/** or gs://...)"
    mapfile -t OPTIONS < <(backfill_options)
    mapfile -t INPUTS < <(backfill_inputs "$@")
    if [[ "$COMMAND" == backfill-dry-run ]]; then
      say "building the backfill's Dataflow graph offline (nothing is read, submitted or merged)"
      NO_GCE_CHECK=True "$PYTHON" -m backfill "${OPTIONS[@]}" "${INPUTS[@]}" --dry_run=True
    else
      need_gcloud
      say "backfilling as a Dataflow batch job, then merging into ${DATASET}"
      "$PYTHON" -m backfill "${OPTIONS[@]}" "${INPUTS[@]}"
    fi
    ;;
  *)
    die "unknown command '${COMMAND}': use provision|deploy|update|drain|template|dry-run|monitoring|backfill|backfill-dry-run"
    ;;
esac
