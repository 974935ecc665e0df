"""The jobs domain's request and response bodies (msgspec: validated by Litestar, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from mpr_common.audio_tracks import AudioLanguages
from mpr_common.content_keys import EncryptionMethod
from mpr_common.events import (
    FailureReason,
    JobKind,
    JobView,
    KeepIf,
    LadderKind,
    PreviewOptions,
    Priority,
    QualityTarget,
    Watermark,
)
from mpr_common.subtitles import SubtitleFiles, SubtitleLanguages

from ..http.fields import JobId, Key, Page
from ..http.limits import (
    MAX_BUCKET_CHARS,
    MAX_ERROR_CHARS,
    MAX_OUTPUT_KEYS,
    MAX_PRESET_CHARS,
    MAX_WORKER_CHARS,
)
from .settings import Executor

BUCKET_PATTERN = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$"  # S3's bucket naming rules

Bucket = Annotated[str, msgspec.Meta(min_length=3, max_length=MAX_BUCKET_CHARS, pattern=BUCKET_PATTERN)]


class JobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: JobKind | None = None  # may come from the template
    source_key: Key
    output_key: Key | None = None
    preset: Annotated[str, msgspec.Meta(max_length=MAX_PRESET_CHARS)] | None = None
    start: Annotated[float, msgspec.Meta(ge=0)] | None = None
    end: Annotated[float, msgspec.Meta(gt=0)] | None = None
    job_id: JobId | None = None
    # EBU R128 two-pass loudness normalisation (audio, transcode and package jobs)
    loudnorm: bool = False
    # package jobs: also a storyboard (sprite sheets, WebVTT thumbnails, poster) in the package's folder
    storyboard: bool = False
    # package jobs: the length of the chunks each video rung is cut into, spread over every transcoder
    # (mpr_common.jobs.DEFAULT_CHUNK_SECONDS when unset; 0: one run per rung), and whether its playlists
    # are published as its chunks end (job.playable) rather than once at the end (default: they are)
    chunk_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    progressive: bool | None = None
    # package jobs: the source's audio streams that become audio tracks, by language ("en", "fra",
    # "pt-BR"), in this order, the first the default; unset: every audio stream. A language the source
    # does not have fails the package (reason "invalid").
    audio_languages: AudioLanguages | None = None
    # package jobs: subtitle files (SRT or WebVTT, in the source bucket) that become subtitle tracks
    # besides the source's subtitle streams and its sidecars (<stem>.<language>.srt|vtt beside it)
    subtitles: SubtitleFiles | None = None
    # package jobs: the subtitle tracks kept, by language, in this order; unset: every text track. A
    # language the source does not have fails the package (reason "invalid").
    subtitle_languages: SubtitleLanguages | None = None
    # transcode jobs: the subtitle track of this language drawn into the picture (a language the source
    # does not have fails the job, reason "invalid"); such a transcode is never chunked
    burn_subtitles: Annotated[str, msgspec.Meta(min_length=2, max_length=35)] | None = None
    # transcode and package jobs: an image (a PNG or JPEG in the source bucket) or a text drawn over the
    # picture (every rung of a package); bounds and defaults: docs/outputs.md, mpr_common.overlays
    watermark: Watermark | None = None
    # package jobs: "aes-128" encrypts every audio and video segment (HLS AES-128; the key is served by
    # the API to the playback token of the package's signed links; no DASH manifest); "cenc" encrypts
    # their samples (CMAF CENC, HLS and DASH; a ClearKey licence served to that token; not with AV1)
    encryption: EncryptionMethod | None = None
    # preview jobs: clips, clip_seconds, width, fps of the animation (defaults: 6 x 1 s, 320 px, 10 fps)
    preview: PreviewOptions | None = None
    # transcode and trim jobs (re-encoding presets): keep the output only when it is no larger than the
    # source per second of media ("smaller"), and also at or above the quality floor ("better"); min_psnr
    # (dB, 0-100) and min_ssim (0-1) are floors on its mean quality (H.264 presets). An output not kept
    # ends the job completed with outcome "not_kept": docs/outputs.md
    keep_if: KeepIf | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None
    # package jobs: "per-title" chooses each rung's rate (and drops rungs) from an analysis of the source
    # so that each reaches quality_target ({"psnr": dB} or {"ssim": x}; default {"psnr": 40}) at the
    # fewest bytes; unset or "fixed": the preset's ladder (docs/outputs.md)
    ladder: LadderKind | None = None
    quality_target: QualityTarget | None = None
    # queue class: urgent jobs go first, bulk ones when there is room (never starved)
    priority: Priority = "normal"
    # a stored job template (name, or name@revision): its fields are the defaults of this request
    template: Annotated[str, msgspec.Meta(max_length=MAX_PRESET_CHARS + 12)] | None = None
    # Who runs it (docs/executors.md); unset: the deployment's API_EXECUTOR. "stepfunctions": the API
    # starts a Step Functions execution of the transcoder Lambda; "lambda": recorded only, the answer
    # carries the job's callback token and the caller runs the Lambda handler.
    executor: Executor | None = None


class JobOut(msgspec.Struct, kw_only=True):
    job: JobView
    output_url: str | None = None
    # Only in the answer that dispatched a job to Lambda: the credential its callbacks must carry.
    callback_token: str | None = None


class JobCallback(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the Lambda handler posts back when it finishes."""

    status: Literal["completed", "failed", "progress"]
    output_key: Key | None = None
    output_bucket: Bucket | None = None
    output_keys: Annotated[list[Key], msgspec.Meta(max_length=MAX_OUTPUT_KEYS)] = msgspec.field(
        default_factory=list
    )
    output_size: Annotated[int, msgspec.Meta(ge=0)] = 0
    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    elapsed: Annotated[float, msgspec.Meta(ge=0)] | None = None
    progress: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    error: Annotated[str, msgspec.Meta(max_length=MAX_ERROR_CHARS)] | None = None
    reason: FailureReason | None = None
    worker: Annotated[str, msgspec.Meta(max_length=MAX_WORKER_CHARS)] | None = None


class JobPage(Page):
    items: list[JobOut]


class JobNotConfirmedBody(msgspec.Struct):
    """A 503 from POST /api/jobs: the queue did not confirm the job, which may still run."""

    status_code: int
    detail: str
    job_id: str  # retry the same request with this job_id: it runs once
