"""Uploads a job's outputs, the media segments of HLS while FFmpeg is still writing the next ones.

FFmpeg's HLS muxer writes a segment and closes it before it opens the next one, so every segment but the
newest is finished and is uploaded at once, a few at a time, in the background. When FFmpeg has ended
only the last segment and the playlist are left to send. The playlist (main output) goes last, after all
segments: a reader never sees a playlist without its media, and a job that fails never uploads it. The
segments a failed attempt uploaded stay, as they did when an upload failed half-way before this module:
a retry overwrites them with the same names, and deleting them could delete the segments of another
delivery of the same job running at the same time (JetStream delivers at least once).

Single-file outputs are uploaded once FFmpeg has ended, as before. A multipart upload fed from the
growing file was tried and dropped: measured on moto it made stream-copy trims (the one job kind that
writes large files fast) slower, not faster, as uploading competes with FFmpeg reading the source from the
same server; encodes write small files slowly, whose upload at the end is a few percent of the job; and an
MP4 with ``+faststart`` (the default output) is rewritten as a whole when FFmpeg ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.keys import validate_key
from mpr_common.s3_client import S3Client
from mpr_common.storage import guess_content_type, upload_file

from .kinds.single_output import Plan

# What a failed S3 call raises; boto3's upload_file wraps a ClientError in S3UploadFailedError.
STORAGE_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError)


def dir_size(path: Path) -> int:
    """Bytes in the files directly under ``path`` (a file FFmpeg renames meanwhile is skipped)."""
    total = 0
    for f in path.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if f.is_file():
                total += f.stat().st_size
    return total


class OutputTooLarge(Exception):
    """The files FFmpeg wrote so far reached ``max_bytes`` (FFmpeg's ``-fs`` does not see HLS segments)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"output reached {size} bytes, limit {limit}")
        self.size = size
        self.limit = limit


class OutputUploader:
    """``async with`` around the FFmpeg run: uploads finished segments in the background; ``finish()``,
    once FFmpeg has succeeded, uploads the rest and returns ``(file, key)`` in upload order (the main
    output last). Leaving the block with an exception stops uploading: no request starts after that."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        plan: Plan,
        output_key: str,
        *,
        concurrency: int = 4,
        poll: float = 0.25,
        on_error: Callable[[], None] = lambda: None,
        max_bytes: int | None = None,
        seal: Callable[[Path], bytes | None] | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.plan = plan
        self.output_key = output_key
        self.poll = poll
        self.on_error = on_error  # called once when a background upload failed (to stop FFmpeg early)
        self.max_bytes = max_bytes  # watched with the segments: the job fails once the output dir holds more
        # what is sent of a file instead of the file itself (an encrypted rendition's segments and
        # playlists: kinds/rendition/encryption.py); None from it: the file as it is
        self.seal = seal
        self.error: BaseException | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled: set[Path] = set()
        self._finished_bytes = 0  # of the scheduled (finished) files
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    def key_for(self, f: Path) -> str:
        if f == self.plan.main_output:
            return self.output_key
        return posixpath.join(posixpath.dirname(self.output_key), f.name)

    async def __aenter__(self) -> OutputUploader:
        if self.plan.segment_glob:
            self._watcher = asyncio.create_task(self._watch(self.plan.segment_glob))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            await self._abort()

    async def _watch(self, pattern: str) -> None:
        try:
            while self.error is None and not self._stop.is_set():
                if self.max_bytes is not None:
                    size = self._output_size()
                    if size >= self.max_bytes:
                        self._fail(OutputTooLarge(size, self.max_bytes))
                        break
                segments = sorted(self.plan.output_dir.glob(pattern), key=lambda p: (len(p.name), p.name))
                for seg in segments[:-1]:  # the newest may still be written
                    self._schedule(seg)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll)
        except Exception as exc:  # e.g. the work dir vanished: fail the job, not the event loop
            self._fail(exc)

    def _output_size(self) -> int:
        """Bytes in the output dir; a segment's size is read once, when it is finished."""
        total = self._finished_bytes
        for f in self.plan.output_dir.iterdir():
            if f not in self._scheduled:
                with contextlib.suppress(FileNotFoundError):  # e.g. a playlist FFmpeg renames meanwhile
                    total += f.stat().st_size
        return total

    def _schedule(self, f: Path) -> None:
        if f in self._scheduled:
            return
        with contextlib.suppress(FileNotFoundError):
            self._finished_bytes += f.stat().st_size
        self._scheduled.add(f)
        task = asyncio.create_task(self._put(f))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, f: Path) -> None:
        async with self._slots:  # a few requests at a time: the bandwidth is shared with FFmpeg's reads
            if self.error is not None:
                return
            key = self.key_for(f)
            try:
                await asyncio.to_thread(self._upload, f, key)
            except Exception as exc:  # storage or local I/O: finish() raises it
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.on_error()

    async def _stop_watching(self) -> None:
        self._stop.set()  # not cancelled: it never holds a request, and ends within one poll
        if self._watcher is not None:
            await self._watcher
            self._watcher = None

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finish(self) -> list[tuple[Path, str]]:
        """Upload what is left, the main output last; raise the first upload error."""
        await self._stop_watching()
        main = self.plan.main_output
        files = sorted(p for p in self.plan.output_dir.iterdir() if p.is_file())
        uploads = [(f, self.key_for(f)) for f in files]
        # Segments first, the playlist (main output) last: a reader never sees a playlist without its media.
        uploads.sort(key=lambda u: u[0] == main)
        for f, _ in uploads:
            if f != main:
                self._schedule(f)
        await self._drain()
        if self.error is not None:
            raise self.error
        await asyncio.to_thread(self._upload, main, self.output_key)
        return uploads

    async def discard(self) -> None:
        """Upload nothing more (an output judged not worth keeping): as when the job fails."""
        await self._abort()

    def _upload(self, f: Path, key: str) -> None:
        sealed = self.seal(f) if self.seal is not None else None
        if sealed is not None:
            validate_key(key)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=sealed, ContentType=guess_content_type(key))
            return
        try:
            upload_file(f, key, self.bucket, client=self.s3)
        except S3UploadFailedError as exc:
            # boto3 wraps the ClientError that says what went wrong (NoSuchBucket, AccessDenied, …):
            # raise that one, which the pipeline's _storage_error classifies.
            if isinstance(exc.__context__, ClientError):
                raise exc.__context__ from None
            raise

    async def _abort(self) -> None:
        await self._stop_watching()
        if self.error is None:
            self.error = RuntimeError("job failed")  # queued uploads start no request
        # Uploads already in a thread cannot be interrupted: wait for them, so that nothing of this
        # attempt is still writing when the job is reported failed (and maybe retried).
        await self._drain()
