"""Every NATS subject, stream and durable consumer name of MPR, in one place."""

from __future__ import annotations

import hashlib

PREFIX = "mpr"

# --- JetStream: objects (scanner -> catalog) -------------------------------------------
OBJECTS_STREAM = "MPR_OBJECTS"
OBJECT_FOUND = "mpr.objects.found"
OBJECT_REMOVED = "mpr.objects.removed"
OBJECTS_ALL = "mpr.objects.*"
# A scan's progress and end travel in the same stream, after the objects they count.
SCAN_STATUS = "mpr.objects.scans"

# --- JetStream: assets (catalog -> anyone) ---------------------------------------------
# One subject per (bucket, key): the stream keeps the latest AssetRegistered of each object, so a
# transcoder reads the catalog's probe with one direct get instead of probing again.
ASSETS_STREAM = "MPR_ASSETS"
ASSET_REGISTERED = "mpr.assets.registered"
ASSETS_REGISTERED_ALL = f"{ASSET_REGISTERED}.>"


def asset_subject(bucket: str, key: str) -> str:
    """``mpr.assets.registered.<token>``: keys may hold characters a subject token cannot."""
    digest = hashlib.sha256(f"{bucket}\x00{key}".encode()).hexdigest()[:40]
    return f"{ASSET_REGISTERED}.{digest}"


# --- JetStream: jobs (api / other services -> transcoders; transcoders -> catalog) -----
JOBS_STREAM = "MPR_JOBS"
JOB_REQUESTED = "mpr.jobs.requested"
# A package's child jobs, published by the transcoder that planned the package: only transcoders may
# publish here, and a child job is run only when it comes from here.
JOB_CHILD = "mpr.jobs.child"
# A job run by an executor outside the transcoders' pool (Lambda via Step Functions): the catalog
# records it like a request; the transcoders' consumer does not see it.
JOB_DISPATCHED = "mpr.jobs.dispatched"
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
CATALOG_ASSETS_LIST = "mpr.catalog.assets.list"
CATALOG_ASSET_GET = "mpr.catalog.assets.get"
CATALOG_JOBS_LIST = "mpr.catalog.jobs.list"
CATALOG_JOB_GET = "mpr.catalog.jobs.get"
CATALOG_SCAN_GET = "mpr.catalog.scans.get"

# --- Durable consumers, all created by the setup owner (mpr_common.setup) ---------------
CATALOG_OBJECTS_DURABLE = "catalog-objects"  # pull, batches
CATALOG_JOBS_DURABLE = "catalog-jobs"  # pull, batches
SCANNER_MINIO_DURABLE = "scanner-minio"  # push, queue group of the same name

# --- Key/value buckets -----------------------------------------------------------------
JOB_STATE_KV = "mpr-job-state"  # job_id -> a terminal state; encoding in mpr_common.jobstate
OUTPUT_OWNERS_KV = "mpr-output-owners"  # hash of bucket + output key -> the job that owns it
PACKAGES_KV = "mpr-packages"  # package job id -> its plan of child jobs (mpr_common.packages)
