"""The job's graph: Pub/Sub -> parse -> dedup -> BigQuery tables and minute
files, with dead letters and conflicts.

`build_pipeline` takes its sources and sinks as arguments: the launchers
(`pipeline.launch` for Dataflow, `localrun` for the local stack) give it the
Pub/Sub read and the production sinks; tests give it a TestStream and sinks
that collect rows. Later features (per-minute metrics, sessions, backfill)
hang off the same `JobOutputs.events` trunk.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import apache_beam as beam

from pipeline.alerts import DetectBursts, PublishAlerts, alert_table_row
from pipeline.bigquery_sink import BigQueryTables
from pipeline.erasure import RedactErased, SuppressErased
from pipeline.clients import bigquery_client, storage_client
from pipeline.files import FileWriter
from pipeline.metrics import (MinuteMetrics, conflict_observations, dead_letter_observations,
                              duplicate_observations, event_observations, metrics_table_row)
from pipeline.minute_files import FileRecord, MinuteFiles
from pipeline.options import EcommerceOptions
from pipeline.sessions import UserSessions, session_table_row
from pipeline.transforms import (DeduplicateEvents, ParseEvents, SkipStoredEvents, table_row_maker,
                                 to_conflict_rows, to_dead_letter_rows)
from schemas import FILES_WRITTEN_TABLE
from schemas.contract import ATTR_EVENT_ID, ATTR_EVENT_TIME


@dataclass
class JobOutputs:
    """What build_pipeline returns, for tests and for later features."""

    events: beam.PCollection        # Accepted, deduplicated, event-time stamped
    dead_letters: beam.PCollection  # dead-letter rows (parse/validate + refused inserts)
    conflicts: beam.PCollection     # conflicts-table rows (dedup memory and minute folders)
    files: beam.PCollection         # FileRecord per file written
    alerts: beam.PCollection | None = None  # Alert per (user, minute) burst (--analytics=on)
    metrics: beam.PCollection | None = None  # MetricsRow versions per (minute, type) (--analytics=on)
    sessions: beam.PCollection | None = None  # SessionRow versions per user session (--analytics=on)


@dataclass
class Sinks:
    """Where the job writes. `tables.write(label, rows, dead_letter_table)`
    returns the dead letters of refused rows (`BigQueryTables` in
    production); `files` writes the minute folders; `alerts(pcoll)`, when
    given, publishes the alerts (the alerts topic in production)."""

    tables: object
    files: FileWriter = field(default_factory=FileWriter)
    alerts: object = None

    @classmethod
    def production(cls, opts: EcommerceOptions, bigquery_client_factory=bigquery_client,
                   storage_client_factory=storage_client) -> "Sinks":
        """BigQuery through insertAll and files through the official storage
        client; a local run passes the local stack's client factories."""
        project, wait = opts.table_project(), opts.outage_wait_s()
        topic = opts.alerts_topic_path()
        return cls(tables=BigQueryTables(project, opts.dataset, opts.bq_batch_size, bigquery_client_factory, wait),
                   files=FileWriter(project, storage_client_factory, wait),
                   alerts=lambda alerts: alerts | "PublishAlerts" >> PublishAlerts(topic))


def read_messages(pipeline: beam.Pipeline, opts: EcommerceOptions) -> beam.PCollection:
    """The Pub/Sub edge. By default nothing is asked of the producer's
    attributes (the brief's producer sets none): the watermark follows publish
    time and the job stamps each event with the event time of its body. Only
    for producers that guarantee them: --pubsub_timestamp_attribute=on makes
    Dataflow's watermark follow the event_time attribute, --pubsub_id_label=on
    makes Dataflow dedup by the event_id attribute (see README)."""
    return pipeline | "ReadPubSub" >> beam.io.ReadFromPubSub(
        subscription=opts.subscription,
        with_attributes=True,
        id_label=ATTR_EVENT_ID if opts.pubsub_id_label == "on" else None,
        timestamp_attribute=ATTR_EVENT_TIME if opts.pubsub_timestamp_attribute == "on" else None,
    )


def _is_new_event(accepted) -> bool:
    return accepted.event.change is None


def file_row(record: FileRecord):
    """(table, row, insertId) of a written file for `files_written`."""
    row = record._asdict()
    row["file_id"] = hashlib.sha256(f"{record.path}\x00{record.sha256}".encode()).hexdigest()[:40]
    return FILES_WRITTEN_TABLE, row, row["file_id"]


def build_pipeline(pipeline: beam.Pipeline, opts: EcommerceOptions, sinks: Sinks,
                   messages: beam.PCollection | None = None, clock=time.time, seen: dict | None = None,
                   erased=None) -> JobOutputs:
    """Add the job's steps to `pipeline`. `messages`: PubsubMessages (the
    Pub/Sub read when None). `clock`: processing time (dedup memory,
    late-file batching). `seen` (digest -> content hash): events BigQuery
    already holds, not inserted again, when a local run replays. `erased`:
    the erased data subjects (pipeline.erasure.ErasedSubjects in
    production), whose later events are dropped and dead letters redacted."""
    if messages is None:
        messages = read_messages(pipeline, opts)

    parsed = messages | "ParseEvents" >> ParseEvents(opts.limits())
    accepted, parse_dead_letters = parsed.events, parsed.dead_letter
    if erased is not None:
        accepted = accepted | "SuppressErased" >> SuppressErased(erased)
        parse_dead_letters = parse_dead_letters | "RedactErased" >> RedactErased(erased)
    to_dedup, stored, replay_conflicts = accepted, [], []
    if seen:  # a local run replaying: what BigQuery already holds goes to the files only
        fresh = accepted | "SkipStoredEvents" >> SkipStoredEvents(seen)
        to_dedup, stored, replay_conflicts = fresh.events, [fresh.stored], [fresh.conflicts]
    deduped = to_dedup | "DeduplicateEvents" >> DeduplicateEvents(
        opts.dedup_memory_s, opts.dedup_buckets, clock=clock, emit_duplicates=opts.analytics_on("metrics"))
    events = deduped.events
    # Replayed events BigQuery already holds still go to their folders, which
    # keep each event once by themselves.
    for_files = (events, *stored) | "EventsForFiles" >> beam.Flatten()
    written = for_files | "MinuteFiles" >> MinuteFiles(
        opts.output_prefix.rstrip("/"), opts.lateness(), opts.num_file_shards, sinks.files, clock=clock)
    conflicts = (*replay_conflicts, deduped.conflicts, written.conflicts) | "AllConflicts" >> beam.Flatten()

    refused = [
        sinks.tables.write("WriteEventTables", events | "ToTableRows" >> beam.Map(table_row_maker("stream"))),
        sinks.tables.write("WriteConflicts", conflicts | "ToConflictRows" >> beam.Map(to_conflict_rows)),
        sinks.tables.write("WriteFilesWritten", written.files | "ToFileRows" >> beam.Map(file_row)),
    ]
    alerts = metrics = sessions = None
    # Analytics hang off the deduplicated trunk: each event counted once, as
    # first sent (a correction, invalidation or deletion is not another event
    # of the user's: the views apply changes, the analytics count activity).
    if opts.analytics_on():
        new_events = events | "NewEventsOnly" >> beam.Filter(_is_new_event)
    if opts.analytics_on("alerts"):
        alerts = new_events | "DetectBursts" >> DetectBursts(opts.alert_threshold, opts.lateness(), opts.alert_buckets)
        refused.append(sinks.tables.write("WriteAlerts", alerts | "ToAlertRows" >> beam.Map(alert_table_row)))
        if sinks.alerts is not None:
            sinks.alerts(alerts)
    if opts.analytics_on("sessions"):
        sessions = new_events | "UserSessions" >> UserSessions(opts.lateness(), opts.session_gap_s)
        refused.append(sinks.tables.write("WriteSessions", sessions | "ToSessionRows" >> beam.Map(session_table_row)))
    dead_letters = (parse_dead_letters, *refused) | "AllDeadLetters" >> beam.Flatten()
    if opts.analytics_on("metrics"):
        # Every part of the job reports its facts as small observations; the
        # metrics step adds them up per (minute, type). Its own refused rows go
        # to the dead-letter table below without being counted (no cycle).
        policy = opts.lateness()
        observations = (
            new_events | "ObserveEvents" >> beam.Map(event_observations(policy)),
            deduped.duplicates | "ObserveDuplicates" >> beam.Map(duplicate_observations(policy)),
            conflicts | "ObserveConflicts" >> beam.Map(conflict_observations(policy)),
            dead_letters | "ObserveDeadLetters" >> beam.Map(dead_letter_observations(policy)),
        ) | "AllObservations" >> beam.Flatten()
        metrics = observations | "MinuteMetrics" >> MinuteMetrics(policy, opts.metrics_emit_s, clock=clock)
        dead_letters = (dead_letters, sinks.tables.write(
            "WriteMetrics", metrics | "ToMetricsRows" >> beam.Map(metrics_table_row))) | "WithMetricsRefusals" >> beam.Flatten()
    sinks.tables.write("WriteDeadLetterTable", dead_letters | "ToDeadLetterRows" >> beam.Map(to_dead_letter_rows),
                       dead_letter_table=True)
    return JobOutputs(events=events, dead_letters=dead_letters, conflicts=conflicts, files=written.files,
                      alerts=alerts, metrics=metrics, sessions=sessions)
