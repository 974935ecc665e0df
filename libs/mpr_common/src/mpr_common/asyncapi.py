"""The NATS contract as an AsyncAPI 3.0 document, generated from the subjects and the msgspec events.

``python -m mpr_common.asyncapi > docs/asyncapi.json`` regenerates it; CI fails when the committed
document and the code disagree, so other teams can publish jobs from the document alone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import msgspec

from . import events as e
from . import subjects as s


@dataclass(frozen=True)
class Channel:
    id: str
    address: str
    message: type
    stream: str | None
    description: str
    mpr_sends: bool  # MPR publishes it (else: MPR receives it)
    headers: dict[str, str] | None = None
    parameters: dict[str, str] | None = None


TRACE = {
    "traceparent": "W3C trace context (optional); MPR continues the trace",
    "tracestate": "W3C (optional)",
}

CHANNELS = [
    Channel(
        "jobRequested",
        s.JOB_REQUESTED,
        e.JobRequested,
        s.JOBS_STREAM,
        "A job for the transcoders. Only `kind` and `source_key` are required. Publish with JetStream and "
        "header `Nats-Msg-Id: <job_id>`: a repeated job_id is dropped for an hour. Without `job_id` the job's "
        "id is the Nats-Msg-Id, else `js-<stream sequence>` (the PubAck's seq). Invalid requests end as "
        "`mpr.jobs.failed` with reason `invalid`.",
        mpr_sends=False,
        headers={"Nats-Msg-Id": "the job_id (deduplication)", **TRACE},
    ),
    Channel(
        "jobChild",
        s.JOB_CHILD,
        e.JobRequested,
        s.JOBS_STREAM,
        "A package's child job (kind `rendition` or `storyboard`, with `parent_id`), published by the "
        "transcoder that planned the package; only transcoders may publish here, and only children from "
        "here are run. A request on `mpr.jobs.requested` naming a `parent_id` is dead-lettered.",
        mpr_sends=True,
        headers={"Nats-Msg-Id": "<job_id>.<the plan's nonce> (deduplication)", **TRACE},
    ),
    Channel(
        "jobRequestedUrgent",
        s.requested_subject("urgent"),
        e.JobRequested,
        s.JOBS_STREAM,
        "A job of the urgent queue class (the subject is the class): served before normal and bulk jobs, "
        "which still get a share. Same rules as `mpr.jobs.requested`.",
        mpr_sends=False,
        headers={"Nats-Msg-Id": "the job_id (deduplication)", **TRACE},
    ),
    Channel(
        "jobRequestedBulk",
        s.requested_subject("bulk"),
        e.JobRequested,
        s.JOBS_STREAM,
        "A job of the bulk queue class: served when there is room, never starved. Same rules as "
        "`mpr.jobs.requested`.",
        mpr_sends=False,
        headers={"Nats-Msg-Id": "the job_id (deduplication)", **TRACE},
    ),
    Channel(
        "jobAttempt",
        s.JOB_ATTEMPT,
        e.JobAttempt,
        s.JOBS_STREAM,
        "One attempt at a job as it ended (completed, failed, retrying, handed back, cancelled), with its "
        "worker, times, reason and FFmpeg's log tail: the job's attempts log.",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobRetried",
        s.JOB_RETRIED,
        e.JobRetried,
        s.JOBS_STREAM,
        "A failed or cancelled job runs again as generation `retry`; its request follows with that `retry`.",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobMoved",
        s.JOB_MOVED,
        e.JobMoved,
        s.JOBS_STREAM,
        "A queued job moved to another queue class.",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobDispatched",
        s.JOB_DISPATCHED,
        e.JobRequested,
        s.JOBS_STREAM,
        "A job handed to an executor outside the transcoders (Step Functions / Lambda): recorded by the "
        "catalog, not run by the transcoders.",
        mpr_sends=True,
        headers={"Nats-Msg-Id": "the job_id (deduplication)", **TRACE},
    ),
    Channel(
        "jobProgress",
        s.JOB_PROGRESS,
        e.JobProgress,
        s.JOBS_STREAM,
        "Progress of a running job, at least every 2 s while FFmpeg runs.",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobCompleted",
        s.JOB_COMPLETED,
        e.JobCompleted,
        s.JOBS_STREAM,
        "A job finished; its outputs are in `output_bucket`.",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobPlayable",
        s.JOB_PLAYABLE,
        e.JobPlayable,
        s.JOBS_STREAM,
        "A package can be played before it completes: its master playlist (`output_key`) lists every "
        "rung and each rung's HLS EVENT playlist holds at least its first chunk. Once per request "
        "generation; a package completed without one is playable from its completion.",
        mpr_sends=True,
        headers={
            "Nats-Msg-Id": "playable-<job_id>, playable-<job_id>-r<retry> for a retry (deduplication)",
            **TRACE,
        },
    ),
    Channel(
        "jobFailed",
        s.JOB_FAILED,
        e.JobFailed,
        s.JOBS_STREAM,
        "A job failed for good (or was cancelled: reason `cancelled`).",
        mpr_sends=True,
        headers=TRACE,
    ),
    Channel(
        "jobCancel",
        s.JOB_CANCEL,
        e.JobCancel,
        s.JOBS_STREAM,
        "Cancel a queued or running job.",
        mpr_sends=False,
        headers=TRACE,
    ),
    Channel(
        "objectFound",
        s.OBJECT_FOUND,
        e.ObjectFound,
        s.OBJECTS_STREAM,
        "A media object seen in S3_BUCKET_IN (listing or bucket notification).",
        mpr_sends=True,
    ),
    Channel(
        "objectRemoved",
        s.OBJECT_REMOVED,
        e.ObjectRemoved,
        s.OBJECTS_STREAM,
        "A media object deleted from S3_BUCKET_IN.",
        mpr_sends=True,
    ),
    Channel(
        "scanStatus",
        s.SCAN_STATUS,
        e.ScanStatus,
        s.OBJECTS_STREAM,
        "A scan's progress and end, after the objects it counts. A completed scan marks registered assets "
        "under its prefix that it no longer listed as removed.",
        mpr_sends=True,
    ),
    Channel(
        "assetRegistered",
        s.ASSET_REGISTERED + ".{object}",
        e.AssetRegistered,
        s.ASSETS_STREAM,
        "An asset registered by the catalog, with its ffprobe metadata (or the probe error). The stream "
        "keeps the latest per object: read it with a direct get of the last message on the subject.",
        mpr_sends=True,
        parameters={"object": "first 40 hex digits of sha256(bucket + NUL + key)"},
    ),
    Channel(
        "deadLetter",
        "mpr.dlq.>",
        e.DeadLetter,
        s.DLQ_STREAM,
        "A message MPR gave up on, with its original payload.",
        mpr_sends=True,
    ),
    Channel(
        "minioEvents",
        s.MINIO_EVENTS,
        dict,
        s.MINIO_STREAM,
        "MinIO bucket notifications (S3 event JSON; keys URL-encoded with `+` and `%2F`).",
        mpr_sends=False,
    ),
    Channel(
        "scanRequest",
        s.SCAN_REQUEST,
        e.ScanRequest,
        None,
        "Request/reply: list S3_BUCKET_IN under a prefix; replies are ScanChunk messages (the last has "
        "done=true and the stream sequence after which the catalog holds the whole scan). Errors come as "
        "headers `Nats-Service-Error-Code` and `Nats-Service-Error`.",
        mpr_sends=False,
    ),
]


def document() -> dict[str, Any]:
    types = [c.message for c in CHANNELS if c.message is not dict] + [e.ScanChunk]
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for c in CHANNELS:
        name = c.message.__name__ if c.message is not dict else "S3EventNotification"
        msg: dict[str, Any] = {
            "name": name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"}
            if c.message is not dict
            else {"type": "object"},
        }
        if c.headers:
            msg["headers"] = {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in c.headers.items()},
            }
        messages[name] = msg
        channel: dict[str, Any] = {
            "address": c.address,
            "description": c.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        if c.parameters:
            channel["parameters"] = {k: {"description": v} for k, v in c.parameters.items()}
        if c.stream:
            channel["bindings"] = {"nats": {"bindingVersion": "0.1.0"}}
            channel["x-jetstream-stream"] = c.stream
        channels[c.id] = channel
        operations[("send" if c.mpr_sends else "receive") + c.id[0].upper() + c.id[1:]] = {
            "action": "send" if c.mpr_sends else "receive",
            "channel": {"$ref": f"#/channels/{c.id}"},
            "messages": [{"$ref": f"#/channels/{c.id}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "MPR media processing",
            "version": "1.0.0",
            "description": (
                "NATS contract of MPR. Every payload carries `v` (schema version); new fields always have "
                "defaults and unknown fields are ignored, so publishers and consumers can be upgraded "
                "independently. Streams use file storage; publish with JetStream and wait for the ack."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "nats:4222", "protocol": "nats", "description": "NATS with JetStream"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
