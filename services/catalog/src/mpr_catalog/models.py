"""The catalog's tables (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Asset(SQLModel, table=True):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("bucket", "key", "etag", name="uq_assets_bucket_key_etag"),
        Index("ix_assets_bucket_key", "bucket", "key"),
    )

    id: str = Field(primary_key=True, max_length=32)
    bucket: str = Field(max_length=63)
    key: str = Field(sa_column=Column(Text, nullable=False))
    etag: str = Field(max_length=128)
    size: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, default=0)
    )  # media is often > 2 GiB
    media_type: str | None = Field(default=None, max_length=16)
    last_modified: float | None = None
    probe_status: str = Field(default="pending", max_length=16, index=True)
    probe_error: str | None = Field(default=None, sa_column=Column(Text))
    info_json: str | None = Field(default=None, sa_column=Column(Text))
    duration: float | None = None
    first_scan_id: str | None = Field(default=None, max_length=64)
    # The last full scan that listed it: a completed scan marks what it did not list as removed.
    last_seen_scan_id: str | None = Field(default=None, max_length=64)
    removed: bool = Field(default=False, index=True)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(default="transcode", max_length=16)
    status: str = Field(default="queued", max_length=16, index=True)
    progress: float = 0.0
    source_bucket: str | None = Field(default=None, max_length=63)
    source_key: str = Field(default="", sa_column=Column(Text, nullable=False))
    output_bucket: str | None = Field(default=None, max_length=63)
    output_key: str | None = Field(default=None, sa_column=Column(Text))
    output_keys_json: str | None = Field(default=None, sa_column=Column(Text))
    output_size: int | None = Field(default=None, sa_column=Column(BigInteger))
    preset: str | None = Field(default=None, max_length=64)
    start: float | None = None
    end: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    failure_reason: str | None = Field(default=None, max_length=32)
    speed: float | None = None
    attempts: int = 0
    worker: str | None = Field(default=None, max_length=128)
    requested_by: str | None = Field(default=None, max_length=64)
    loudnorm: bool = False
    loudness_json: str | None = Field(default=None, sa_column=Column(Text))
    # Its video output's quality (mpr_common.events.Quality, without per-frame values); a package's
    # renditions' by name.
    quality_json: str | None = Field(default=None, sa_column=Column(Text))
    rendition_quality_json: str | None = Field(default=None, sa_column=Column(Text))
    # A completed job: "kept", or "not_kept" with the verdict (mpr_common.events.KeepVerdict) of its
    # keep_if/floors.
    outcome: str | None = Field(default=None, max_length=16)
    keep_json: str | None = Field(default=None, sa_column=Column(Text))
    # A per-title package: the ladder its analysis chose and why (mpr_common.events.LadderChoice).
    chosen_ladder_json: str | None = Field(default=None, sa_column=Column(Text))
    # A package's child: its package, the rung it encodes and its share of the package's work.
    parent_id: str | None = Field(default=None, max_length=64, index=True)
    rendition: str | None = Field(default=None, max_length=32)
    weight: float = 1.0
    created_at: float = Field(default_factory=time.time, index=True)
    updated_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    # Its queue class: the request's, until a JobMoved (the latest wins; a request never undoes one).
    priority: str = Field(default="normal", max_length=16)
    moved_at: float | None = None
    template: str | None = Field(default=None, max_length=128)
    rule: str | None = Field(default=None, max_length=128)
    # The request generation the row describes: 0, then n once its n-th retry is seen (job_events).
    retries: int = 0
    # The request as recorded (normalised): what a retry publishes again.
    request_json: str | None = Field(default=None, sa_column=Column(Text))
    # A package: since when it can be played (its JobPlayable, else its completion) and its master
    # playlist; cleared when the run fails or is cancelled (its files are deleted).
    playable_at: float | None = None
    playable_key: str | None = Field(default=None, sa_column=Column(Text))


class Attempt(SQLModel, table=True):
    """One attempt at a job as it ended, reported by the transcoder that ran it (JobAttempt): the job's
    log (GET /api/jobs/{id}/log). An attempt is a fact: the first record of it stands."""

    __tablename__ = "job_attempts"

    job_id: str = Field(primary_key=True, max_length=64)
    retry: int = Field(default=0, primary_key=True)  # the request generation
    attempt: int = Field(primary_key=True)  # the delivery within it, from 1
    worker: str | None = Field(default=None, max_length=128)
    started_at: float
    ended_at: float
    outcome: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_column=Column(Text))
    log: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class Scan(SQLModel, table=True):
    """A scan's progress and result, recorded from the scanner's ScanStatus events."""

    __tablename__ = "scans"

    id: str = Field(primary_key=True, max_length=64)
    bucket: str = Field(default="", max_length=63)
    prefix: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    state: str = Field(default="running", max_length=16)
    found: int = 0
    registered: int = 0
    removed: int = 0
    refused_json: str | None = Field(default=None, sa_column=Column(Text))
    refused_count: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: float = Field(default_factory=time.time, index=True)
    finished_at: float | None = None
