"""Every NATS subject, stream and durable consumer name of MPR, in one place."""

from __future__ import annotations

PREFIX = "mpr"

# --- JetStream: objects (scanner -> catalog) -------------------------------------------
OBJECTS_STREAM = "MPR_OBJECTS"
OBJECT_FOUND = "mpr.objects.found"
OBJECT_REMOVED = "mpr.objects.removed"
OBJECTS_ALL = "mpr.objects.*"

# --- JetStream: assets (catalog -> anyone) ---------------------------------------------
ASSETS_STREAM = "MPR_ASSETS"
ASSET_REGISTERED = "mpr.assets.registered"

# --- JetStream: jobs (api / other services -> transcoders; transcoders -> catalog) -----
JOBS_STREAM = "MPR_JOBS"
JOB_REQUESTED = "mpr.jobs.requested"
JOB_PROGRESS = "mpr.jobs.progress"
JOB_COMPLETED = "mpr.jobs.completed"
JOB_FAILED = "mpr.jobs.failed"
JOB_CANCEL = "mpr.jobs.cancel"
JOBS_ALL = "mpr.jobs.>"
TRANSCODERS_DURABLE = "transcoders"  # the one pull consumer all transcoder replicas share

# --- JetStream: dead letters ----------------------------------------------------------
DLQ_STREAM = "MPR_DLQ"
DLQ_JOBS = "mpr.dlq.jobs"
DLQ_CATALOG = "mpr.dlq.catalog"
DLQ_SCANNER = "mpr.dlq.scanner"

# --- JetStream: JetStream's own max-deliveries advisories for the transcoders' consumer -----
# Kept in a stream so that a job whose worker died on every delivery is failed even if the
# catalog was down when the advisory was sent.
ADVISORIES_STREAM = "MPR_ADVISORIES"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{TRANSCODERS_DURABLE}"
CATALOG_ADVISORIES_DURABLE = "catalog-advisories"

# --- JetStream: MinIO bucket notifications (MINIO_NOTIFY_NATS_SUBJECT) -----------------
MINIO_STREAM = "MPR_MINIO_EVENTS"
MINIO_EVENTS = "mpr.minio.events"

# --- Core NATS request/reply ----------------------------------------------------------
SCAN_REQUEST = "mpr.scanner.scan"
CATALOG_REGISTER = "mpr.catalog.register"
CATALOG_ASSETS_LIST = "mpr.catalog.assets.list"
CATALOG_ASSET_GET = "mpr.catalog.assets.get"
CATALOG_JOBS_LIST = "mpr.catalog.jobs.list"
CATALOG_JOB_GET = "mpr.catalog.jobs.get"
CATALOG_JOB_RECORD = "mpr.catalog.jobs.record"

# --- Durable consumers (durable name == queue group for push consumers) ---------------
CATALOG_OBJECTS_DURABLE = "catalog-objects"
CATALOG_JOBS_DURABLE = "catalog-jobs"
SCANNER_MINIO_DURABLE = "scanner-minio"

# --- Key/value buckets -----------------------------------------------------------------
JOB_STATE_KV = "mpr-job-state"  # job_id -> "completed" | "cancelled" (transcoders' claim check)
