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


# Queue classes (events.Priority): "normal" keeps the subjects above; the others add a token. The subject
# a job is published on is its class (the transcoders pull each class from its own consumer).
def requested_subject(priority: str = "normal") -> str:
    return JOB_REQUESTED if priority == "normal" else f"{JOB_REQUESTED}.{priority}"


def child_subject(priority: str = "normal") -> str:
    return JOB_CHILD if priority == "normal" else f"{JOB_CHILD}.{priority}"


def transcoders_durable(priority: str = "normal") -> str:
    return TRANSCODERS_DURABLE if priority == "normal" else f"{TRANSCODERS_DURABLE}-{priority}"


# A job run by an executor outside the transcoders' pool (Lambda via Step Functions): the catalog
# records it like a request; the transcoders' consumer does not see it.
JOB_DISPATCHED = "mpr.jobs.dispatched"
JOB_PROGRESS = "mpr.jobs.progress"
JOB_COMPLETED = "mpr.jobs.completed"
JOB_PLAYABLE = "mpr.jobs.playable"  # a package playable before it completes (transcoders)
JOB_FAILED = "mpr.jobs.failed"
JOB_CANCEL = "mpr.jobs.cancel"
JOB_ATTEMPT = "mpr.jobs.attempts"  # one JobAttempt per attempt that ended (transcoders)
JOB_RETRIED = "mpr.jobs.retried"  # a failed job run again (API)
JOB_MOVED = "mpr.jobs.moved"  # a queued job moved to another queue class (API)
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


# Every queue class's advisory (what the catalog's advisories consumer pulls).
MAX_DELIVERIES_ADVISORIES = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"


def max_deliveries_advisory(priority: str = "normal") -> str:
    """The advisory of a queue class's consumer (``MAX_DELIVERIES_ADVISORY`` for normal)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{transcoders_durable(priority)}"


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
CATALOG_JOB_LOG = "mpr.catalog.jobs.log"  # a job and its attempts (GET /api/jobs/{id}/log)
CATALOG_JOB_REQUESTS = "mpr.catalog.jobs.requests"  # jobs by id or filter, with what a retry publishes

# --- Durable consumers, all created by the setup owner (mpr_common.setup) ---------------
CATALOG_OBJECTS_DURABLE = "catalog-objects"  # pull, batches
CATALOG_JOBS_DURABLE = "catalog-jobs"  # pull, batches
SCANNER_MINIO_DURABLE = "scanner-minio"  # push, queue group of the same name

# --- Key/value buckets -----------------------------------------------------------------
JOB_STATE_KV = "mpr-job-state"  # job_id -> a terminal state; encoding in mpr_common.jobstate
OUTPUT_OWNERS_KV = "mpr-output-owners"  # hash of bucket + output key -> the job that owns it
PACKAGES_KV = "mpr-packages"  # package id -> its children's plan; <id>.released: how far they are queued
TEMPLATES_KV = "mpr-templates"  # template name -> its job template; the KV history holds its versions
RULES_KV = "mpr-rules"  # rule id -> an automation rule (prefix/glob + metadata conditions -> template)
RULE_FIRINGS_KV = "mpr-rule-firings"  # hash of rule + bucket + key + etag -> the job it started (once)
WEBHOOKS_KV = "mpr-webhooks"  # subscription id -> a webhook subscription
QUEUES_KV = "mpr-queues"  # queue class -> paused or not
QUEUE_PAUSED = b"paused"  # a paused class's value in QUEUES_KV; any other value (or none): it runs
DLQ_REPLAYS_KV = "mpr-dlq-replays"  # a dead job request (its MPR_JOBS sequence) -> its one replay
CONTENT_KEYS_KV = "mpr-content-keys"  # package id -> its content key, wrapped (mpr_common.content_keys)
SCENES_KV = "mpr-scenes"  # hash of bucket + key -> the source's scene changes at an ETag (mpr_common.scenes)

# --- JetStream: webhooks (deliveries log, one subject per subscription) ------------------
WEBHOOKS_STREAM = "MPR_WEBHOOKS"
WEBHOOK_DELIVERIES = "mpr.webhooks.deliveries"  # .<subscription id>
DLQ_WEBHOOKS = "mpr.dlq.webhooks"
WEBHOOKS_JOBS_DURABLE = "webhooks-jobs"  # API replicas share it: each event delivered once
WEBHOOKS_ASSETS_DURABLE = "webhooks-assets"
# Delivery attempts that are due (first ones and retries), a work queue of their own: a retry waits
# there, not in the jobs or assets consumer, so a dead receiver holds up nothing else. API only.
WEBHOOK_TASKS_STREAM = "MPR_WEBHOOK_TASKS"
WEBHOOK_TASKS = "mpr.webhooks.tasks"
WEBHOOKS_TASKS_DURABLE = "webhooks-tasks"  # API replicas share it: each attempt made once


def webhook_delivery_subject(subscription_id: str, delivery_id: str = "*") -> str:
    """One delivery's log record (the stream keeps the latest per subject); ``*``: all of a subscription's."""
    return f"{WEBHOOK_DELIVERIES}.{subscription_id}.{delivery_id}"


RULES_DURABLE = "rules"  # on the assets stream: rules fire on registered assets (API)
RULES_JOBS_DURABLE = "rules-jobs"  # on the jobs stream's completions: rules on job.not_kept (API)
