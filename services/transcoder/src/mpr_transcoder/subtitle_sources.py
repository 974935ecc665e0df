"""Where a job's subtitle track is read from: one of the source's subtitle streams (the source's URL,
its demuxers), or a subtitle file of the source bucket (a sidecar beside the source, or one a package
names), handed to FFmpeg as a presigned URL read by the SRT and WebVTT demuxers only, whatever its
content claims to be. Sidecars are found by listing the source's folder for its stem.

What is wrong with a file (missing, too large) fails the job as invalid, with the reason."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.events import JobRequested, MediaInfo, SubtitleFile, SubtitleTrack
from mpr_common.jobs import JobRequestError
from mpr_common.s3_client import S3Client
from mpr_common.settings import S3Settings
from mpr_common.subtitles import (
    MAX_SUBTITLE_BYTES,
    burn_track,
    list_sidecars,
)

from .ffmpeg.argv import GLOBAL_ARGS, input_args, size_limit, subtitle_file_input
from .job_errors import JobError, storage_error
from .source_objects import locate_side_file


@dataclass(frozen=True, slots=True)
class SubtitleInput:
    """A subtitle track as FFmpeg's input: ``url`` (the source's, or a subtitle file's: ``is_file``), the
    stream ``stream`` of it (FFmpeg's ``-map``); ``name`` is what stands for the URL in errors."""

    track: SubtitleTrack
    url: str
    name: str
    is_file: bool
    stream: int

    def input_args(self) -> list[str]:
        return subtitle_file_input(self.url) if self.is_file else input_args(self.url)

    @property
    def map(self) -> str:
        return f"0:s:{self.stream}"

    def webvtt_args(self, out: Path) -> list[str]:
        """FFmpeg converting the track to a WebVTT file (text only: no picture, no sound decoded)."""
        return [
            *GLOBAL_ARGS,
            *self.input_args(),
            *("-map", self.map, "-vn", "-an", "-c:s", "webvtt"),
            *size_limit(MAX_SUBTITLE_BYTES),
            *("-f", "webvtt", str(out)),
        ]


async def find_sidecars(s3: S3Client, bucket: str, source_key: str) -> list[SubtitleFile]:
    """The sidecars of ``source_key`` in ``bucket`` (``<stem>.<language>.srt|vtt`` beside it)."""
    try:
        return await asyncio.to_thread(list_sidecars, s3, bucket, source_key)
    except (ClientError, BotoCoreError) as exc:
        raise storage_error(exc) from None


async def subtitle_input(
    track: SubtitleTrack, job: JobRequested, source_url: str, *, s3: S3Client, s3_settings: S3Settings
) -> SubtitleInput:
    """``track`` (of ``job``'s source) as FFmpeg's input."""
    if track.key is None:
        return SubtitleInput(track, source_url, job.source_key, False, track.stream or 0)
    bucket = job.source_bucket or s3_settings.bucket_in
    url = await locate_side_file(
        s3, bucket, track.key, what="subtitles: the file", max_bytes=MAX_SUBTITLE_BYTES
    )
    return SubtitleInput(track, url, track.key, True, 0)


async def prepare_subtitles(
    job: JobRequested, info: MediaInfo, source_url: str, *, s3: S3Client, s3_settings: S3Settings
) -> SubtitleInput | None:
    """The subtitle track ``job`` (normalised) reads: a package's subtitle child's, or the one a
    transcode burns in (the source's first text stream in that language, else its sidecar in it: a
    language it lacks fails the job as invalid); None for any other job."""
    if job.subtitle is not None:
        return await subtitle_input(job.subtitle, job, source_url, s3=s3, s3_settings=s3_settings)
    if job.burn_subtitles is None:
        return None
    bucket = job.source_bucket or s3_settings.bucket_in
    try:
        track = burn_track(
            info.subtitle_streams, await find_sidecars(s3, bucket, job.source_key), job.burn_subtitles
        )
    except JobRequestError as exc:
        raise JobError(str(exc), "invalid") from None
    return await subtitle_input(track, job, source_url, s3=s3, s3_settings=s3_settings)


async def trim_sidecars(
    job: JobRequested, source_url: str, *, s3: S3Client, s3_settings: S3Settings
) -> list[SubtitleInput]:
    """The sidecars a trim (``job``, normalised) embeds as subtitle tracks of its output, as FFmpeg's
    inputs; none for any other job."""
    if job.kind != "trim":
        return []
    bucket = job.source_bucket or s3_settings.bucket_in
    tracks = [
        SubtitleTrack(key=f.key, language=f.language, label=f.language)
        for f in await find_sidecars(s3, bucket, job.source_key)
    ]
    return [await subtitle_input(t, job, source_url, s3=s3, s3_settings=s3_settings) for t in tracks]
