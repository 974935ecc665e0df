"""Versioned events of MPR's NATS contract.

Rules: every event carries ``v`` (schema version); new fields always get defaults so old
publishers stay valid; decoders are built once (see :mod:`mpr_common.codec`).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal, get_args

import msgspec

# The contract's enumerations: each defined here once; the tuples are derived, never restated.
# "package": an adaptive-bitrate package, run as one "rendition" child job per rung of its ladder (and a
# "storyboard" child when asked for); children are published by the transcoder that takes the package.
# "preview": a short animated WebP or GIF of clips from evenly spread moments of the source, for listings.
JobKind = Literal[
    "transcode", "trim", "thumbnail", "audio", "hls", "package", "rendition", "storyboard", "preview"
]
JOB_KINDS: tuple[str, ...] = get_args(JobKind)
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FailureReason = Literal["invalid", "source", "ffmpeg", "storage", "timeout", "internal", "cancelled"]
FAILURE_REASONS: tuple[str, ...] = get_args(FailureReason)
# Queue classes: bulk never starves urgent, urgent never starves bulk forever (see the transcoders).
Priority = Literal["urgent", "normal", "bulk"]
PRIORITIES: tuple[str, ...] = get_args(Priority)
ObjectSource = Literal["scan", "notification"]
ScanState = Literal["running", "completed", "failed"]
ProbeStatus = Literal["pending", "ok", "error"]  # of an asset: not probed yet, probed, probe failed
# How an output's quality was measured: by its encoder, against the very frames it was given.
QualityMethod = Literal["encoder"]
# Whether a transcode or trim keeps its output (see mpr_common.keeping and docs/outputs.md): "always";
# "smaller": only when its bytes per second of media are at most the source's; "better": smaller and at
# or above the quality floor (min_psnr/min_ssim, else mpr_common.keeping.BETTER_MIN_PSNR).
KeepIf = Literal["always", "smaller", "better"]
KEEP_IFS: tuple[str, ...] = get_args(KeepIf)
# How a completed job ended: its output kept, or made, judged and not kept (never uploaded).
JobOutcome = Literal["kept", "not_kept"]
JOB_OUTCOMES: tuple[str, ...] = get_args(JobOutcome)
# Why an output was not kept: more bytes per second than the source; a mean below a floor; a figure
# needed to judge it not known (the source's duration, or a quality not measured).
NotKeptReason = Literal["larger", "below_min_psnr", "below_min_ssim", "not_measured"]
NOT_KEPT_REASONS: tuple[str, ...] = get_args(NotKeptReason)


def now() -> float:
    return time.time()


def new_id() -> str:
    return uuid.uuid4().hex


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    v: int = 1


# --- objects -------------------------------------------------------------------------
class ObjectFound(Event, kw_only=True):
    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    last_modified: float | None = None
    source: ObjectSource = "scan"
    scan_id: str | None = None
    at: float = msgspec.field(default_factory=now)


class ObjectRemoved(Event, kw_only=True):
    bucket: str
    key: str
    source: ObjectSource = "notification"
    at: float = msgspec.field(default_factory=now)


class AudioStream(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One audio stream of a source, as ffprobe read it: ``index`` counts audio streams only (FFmpeg's
    ``-map 0:a:<index>``); ``language`` is a BCP 47 tag made from the stream's ``language`` tag (ISO 639-1
    where there is one: ``eng`` is ``en``; None when untagged or ``und``); ``title`` is its ``title`` tag
    with control characters and line breaks removed (see :mod:`mpr_common.audio_tracks`)."""

    index: int
    codec: str | None = None
    channels: int | None = None
    language: str | None = None
    title: str | None = None


class MasteringDisplay(msgspec.Struct, frozen=True, kw_only=True):
    """SMPTE ST 2086 mastering display colour volume, in HEVC SEI units (as x265's master-display takes
    them): chromaticity coordinates in 1/50000, luminance in 1/10000 cd/m2."""

    red: tuple[int, int]
    green: tuple[int, int]
    blue: tuple[int, int]
    white_point: tuple[int, int]
    max_luminance: int
    min_luminance: int


class ContentLight(msgspec.Struct, frozen=True, kw_only=True):
    """CTA-861.3 content light level, cd/m2."""

    max_cll: int
    max_fall: int


class SubtitleStream(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One subtitle stream of a source, as ffprobe read it: ``index`` counts subtitle streams only
    (FFmpeg's ``-map 0:s:<index>``); ``language`` and ``title`` made safe as an audio stream's are
    (see :mod:`mpr_common.subtitles`); ``default`` and ``forced`` are its dispositions."""

    index: int
    codec: str | None = None
    language: str | None = None
    title: str | None = None
    default: bool = False
    forced: bool = False


class SubtitleFile(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A subtitle file (SRT or WebVTT) in the job's source bucket: a sidecar found beside the source
    (``<stem>.<language>.srt|vtt``) or one a package request names; ``language`` a BCP 47 tag."""

    key: str
    language: str | None = None


class SubtitleTrack(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What one subtitle track of a package (or a burn-in) is made from: the source's subtitle stream
    ``stream`` (its index among subtitle streams), or the file ``key`` of the source bucket; its language,
    the name a player shows, and whether it is the default or a forced track."""

    stream: int | None = None
    key: str | None = None
    language: str | None = None
    label: str | None = None
    default: bool = False
    forced: bool = False


# What a probe of this version reads: every audio and subtitle stream and the video's colour. A probe
# stamped with an older version (or none: made before the stamp existed) lacks some of it, so a transcoder
# probes the source again rather than plan tracks or colour from it.
PROBE_VERSION = 1


class MediaInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Technical metadata read by ffprobe. ``audio_codec``, ``sample_rate`` and ``channels`` are the first
    audio stream's; ``audio_streams`` lists every audio stream (at most
    :data:`mpr_common.audio_tracks.MAX_AUDIO_STREAMS`). ``probe_version`` is the :data:`PROBE_VERSION` of
    the code that probed (0: a probe from before it was stamped)."""

    format_name: str | None = None
    duration: float | None = None
    bit_rate: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    streams: int = 0
    audio_streams: list[AudioStream] = msgspec.field(default_factory=list)
    # the video stream's colour, as ffprobe names it (HDR10: bt2020 / smpte2084 / bt2020nc; HLG:
    # arib-std-b67): what keeps an HDR source HDR, see mpr_common.colour
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    mastering_display: MasteringDisplay | None = None
    content_light: ContentLight | None = None
    # every subtitle stream (at most mpr_common.subtitles.MAX_SUBTITLE_STREAMS)
    subtitle_streams: list[SubtitleStream] = msgspec.field(default_factory=list)
    probe_version: int = 0


class AssetRegistered(Event, kw_only=True):
    asset_id: str
    bucket: str
    key: str
    etag: str
    size: int = 0
    media_type: str | None = None
    info: MediaInfo | None = None
    probe_error: str | None = None
    at: float = msgspec.field(default_factory=now)


# --- jobs ----------------------------------------------------------------------------
class Loudness(msgspec.Struct, kw_only=True, omit_defaults=True):
    """EBU R128 loudness: what loudnorm's first pass measured on the source, and the target it was
    normalised to in the second pass."""

    input_i: float  # integrated loudness, LUFS
    input_tp: float  # true peak, dBTP
    input_lra: float  # loudness range, LU
    input_thresh: float  # gating threshold, LUFS
    target_offset: float  # offset loudnorm applies after its gain, LU
    target_i: float = -23.0
    target_tp: float = -1.0
    target_lra: float = 7.0


class MetricStats(msgspec.Struct, kw_only=True, frozen=True):
    """One metric over an output's frames: the mean, the worst frame and the 5th percentile (nearest rank:
    the ``ceil(0.05 * n)``-th lowest frame), which says how bad the bad moments are where a mean hides
    them."""

    mean: float
    min: float
    p5: float


class Quality(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How close an encoded video output is to its source at the output's resolution (the picture the
    encoder was given: scaled, watermarked), measured over every frame (see the transcoder's
    ``quality`` module and docs/outputs.md). ``psnr``: luma PSNR in dB, an identical frame counts as
    :data:`mpr_common.quality.PSNR_CAP`; ``ssim``: luma SSIM, 0..1; ``vmaf``: 0..100, only where the FFmpeg
    in use has libvmaf. A metric not measured is absent (None), never 0.

    ``frame_psnr``/``frame_ssim`` are the per-frame values, carried only by a chunk's completion so that
    the rendition or transcode stitched from its chunks gets exact statistics (its own quality drops
    them)."""

    v: int = 1
    frames: int = 0
    width: int | None = None
    height: int | None = None
    psnr: MetricStats | None = None
    ssim: MetricStats | None = None
    vmaf: MetricStats | None = None
    method: QualityMethod = "encoder"
    frame_psnr: list[float] = msgspec.field(default_factory=list)
    frame_ssim: list[float] = msgspec.field(default_factory=list)


class KeepVerdict(msgspec.Struct, kw_only=True):
    """Whether a job's output was kept, and the figures it was judged on (see :mod:`mpr_common.keeping`):
    bytes per second of media of the source (its object's size over its probed duration) and of the
    output (its file's size over the seconds it holds), the output's mean PSNR (dB) and SSIM against
    the source, and the floors they were held to. ``detail`` says it in one line ("output 412 kB/s >
    source 300 kB/s")."""

    v: int = 1
    keep_if: KeepIf = "always"
    kept: bool = True
    # the source it was compared with (what a rule on job.not_kept matches and starts its job on)
    source_key: str = ""
    source_bucket: str | None = None
    reason: NotKeptReason | None = None
    detail: str = ""
    source_rate: float | None = None  # bytes/s
    output_rate: float | None = None  # bytes/s
    output_size: int = 0  # bytes of the output made (uploaded only when kept)
    psnr: float | None = None
    ssim: float | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None


RenditionType = Literal["video", "audio", "subtitles"]


class Rendition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One rendition of a package as its child job wrote it: a CMAF (fMP4) HLS media playlist, its init
    segment and media segments, all in the package's folder. What the manifests are written from."""

    name: str  # the ladder rung, also its files' stem: <name>.m3u8, <name>_init.mp4, <name>_00000.m4s
    type: RenditionType
    playlist: str  # file name of the media playlist, relative to the package's folder
    init: str  # file name of the init segment
    media_pattern: str  # printf pattern of the media segments' file names, e.g. "720p_%05d.m4s"
    segments: list[float] = msgspec.field(default_factory=list)  # each segment's duration, seconds
    start_number: int = 0
    bandwidth: int = 0  # peak bits/s over the segments
    average_bandwidth: int = 0
    codecs: str = ""  # RFC 6381, e.g. "avc1.64001f", "mp4a.40.2"
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    # HLS VIDEO-RANGE of an HDR video rendition ("PQ", "HLG", from its colr box); None: SDR
    video_range: str | None = None
    # sha256 of the init segment: every chunk of a chunked rendition must have written the same one
    init_digest: str | None = None
    # an audio rendition: its BCP 47 language and the name a player shows (the stream's title, else its
    # language, else "Audio <n>"); None: the rendition's name
    language: str | None = None
    label: str | None = None
    # a subtitle track (WebVTT segments, no init segment): the whole track in one file (what DASH lists),
    # and its dispositions (HLS DEFAULT and FORCED)
    text_file: str | None = None
    default: bool = False
    forced: bool = False
    # a video rendition: its picture against the source's at its size (a chunk's with per-frame values)
    quality: Quality | None = None


class ChunkSpan(msgspec.Struct, kw_only=True, frozen=True):
    """One chunk of a chunked rendition: the source's seconds ``[start, end)`` (``end`` None: to the
    source's end), its place in the title, and the number of its first media segment. Chunks start on
    segment boundaries, so a chunk is a whole number of segments and every rung cuts at the same times."""

    index: int
    start: float
    end: float | None = None
    first_segment: int = 0


WatermarkPosition = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]
WATERMARK_POSITIONS: tuple[str, ...] = get_args(WatermarkPosition)


class Watermark(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """An image (``key``: a PNG or JPEG in the job's source bucket) or a line of ``text`` drawn over the
    picture after it is scaled, in a corner (or the centre) ``margin`` output pixels from the edges, at
    ``opacity``. The image is ``width`` of the output's width wide (each rung of a package its own), the
    text's height ``size`` of the output's height. Bounds and defaults: :mod:`mpr_common.overlays`;
    a normalised job names ``width`` (image) or ``size`` (text), never both."""

    key: str | None = None
    text: str | None = None
    position: WatermarkPosition = "top-right"
    margin: int = 16
    opacity: float = 0.8
    width: float | None = None
    size: float | None = None


class PreviewOptions(msgspec.Struct, kw_only=True, frozen=True):
    """A ``preview`` job's animation: ``clips`` clips of ``clip_seconds`` from evenly spread moments of the
    source, ``width`` pixels wide, ``fps`` frames a second, looping. Bounds: :mod:`mpr_common.overlays`."""

    clips: int = 6
    clip_seconds: float = 1.0
    width: int = 320
    fps: float = 10.0


# A package's ladder: the preset's as it is, or one chosen from an analysis of the source (per_title).
LadderKind = Literal["fixed", "per-title"]


class QualityTarget(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What a per-title ladder aims at: exactly one of luma PSNR (dB), SSIM (0-1) or VMAF (0-100) per
    rung, at the rung's own resolution. Bounds and the default: :mod:`mpr_common.per_title`."""

    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None


class RungSettings(msgspec.Struct, kw_only=True, frozen=True):
    """A per-title package's video rendition child: the rate settings its package's analysis chose for
    its rung (in place of the preset's)."""

    crf: int
    max_rate: str  # e.g. "1200k"
    buf_size: str


class ProbePoint(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One constant-quality probe encode of a per-title analysis: the rung's samples at ``crf``, the
    rate it took and the quality it reached (mean over the samples' frames)."""

    crf: int
    kbps: float
    psnr: float | None = None
    ssim: float | None = None


class RungChoice(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What a per-title analysis chose for one rung, and why."""

    name: str
    height: int
    kept: bool
    reason: str  # why this CRF, or why the rung was dropped
    crf: int | None = None
    max_rate: str | None = None
    buf_size: str | None = None
    predicted_kbps: float | None = None
    predicted_quality: float | None = None  # in the target's metric
    probes: list[ProbePoint] = msgspec.field(default_factory=list)


class LadderChoice(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A per-title package's ladder: the target, where the samples came from (the source's scene
    changes, kept for later work, else even spacing), each rung's choice, and what the analysis cost."""

    metric: str  # "psnr", "ssim" or "vmaf"
    target: float
    samples: list[float] = msgspec.field(default_factory=list)  # start of each sample, seconds
    sample_seconds: float = 0.0
    scenes: list[float] = msgspec.field(default_factory=list)  # scene changes found (seconds)
    spread: str = "even"  # "scenes": samples start at scene changes; "even": evenly spread
    rungs: list[RungChoice] = msgspec.field(default_factory=list)
    elapsed: float = 0.0  # wall seconds the analysis took


class JobRequested(Event, kw_only=True):
    """Published on ``mpr.jobs.requested`` with header ``Nats-Msg-Id: <job_id>``.

    Without ``job_id`` every consumer derives the same one from the message (its ``Nats-Msg-Id``,
    else its stream sequence): see :func:`mpr_common.jobs.job_identity`."""

    job_id: str = ""
    kind: JobKind
    source_key: str
    output_key: str | None = None
    preset: str | None = None
    start: float | None = None
    end: float | None = None
    source_bucket: str | None = None
    output_bucket: str | None = None
    requested_by: str = "api"
    requested_at: float = msgspec.field(default_factory=now)
    # EBU R128 two-pass loudness normalisation (audio, transcode, package jobs)
    loudnorm: bool = False
    # package: also a storyboard (sprite sheets, WebVTT thumbnails track, poster) in the package folder
    storyboard: bool = False
    # a child of a package: its parent's id, the rung of the ladder it encodes, its share of the work
    # (a package's children's shares add up to 1: the catalog counts a child not released yet as 0)
    parent_id: str | None = None
    rendition: str | None = None
    weight: float = 1.0
    priority: Priority = "normal"
    template: str | None = None  # "<name>@<revision>" of the job template it was made from
    rule: str | None = None  # the rule that started it (automation)
    retry: int = 0  # 0: the original request; n: its n-th retry (POST /api/jobs/{id}/retry)
    # package: seconds of source per chunk child (each rung is encoded as chunks spread over every
    # transcoder); 0: one child per rung; None: mpr_common.jobs.DEFAULT_CHUNK_SECONDS
    chunk_seconds: float | None = None
    # package: HLS playlists published as soon as every rung's first chunk is up, growing in order
    # (EVENT playlists); None: mpr_common.jobs.DEFAULT_PROGRESSIVE
    progressive: bool | None = None
    # a chunk child of a package: which part of the source it encodes
    chunk: ChunkSpan | None = None
    # transcode and package jobs (and every video rendition of a package): drawn over the picture
    watermark: Watermark | None = None
    # preview jobs: the animation's clips, size and rate (None: the defaults)
    preview: PreviewOptions | None = None
    # package: the source's audio streams that become audio renditions, by language (BCP 47 or ISO 639),
    # in this order, the first the default; None: every audio stream, in the source's order
    audio_languages: list[str] | None = None
    # a package's audio rendition child: the source's audio stream it encodes
    audio_stream: AudioStream | None = None
    # package: subtitle files of the source bucket that become subtitle tracks too (besides the source's
    # subtitle streams and the sidecars beside it)
    subtitles: list[SubtitleFile] | None = None
    # package: the subtitle tracks kept, by language, in this order; None: every text subtitle track
    subtitle_languages: list[str] | None = None
    # transcode: the subtitle track of this language drawn into the picture
    burn_subtitles: str | None = None
    # a package's subtitle child: the track it converts to segmented WebVTT
    subtitle: SubtitleTrack | None = None
    # transcode and trim (re-encoding presets): the output is kept only if it passes (mpr_common.keeping);
    # None: "always". min_psnr (dB) / min_ssim (0..1): floors on the output's mean quality (H.264 presets)
    keep_if: KeepIf | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None
    # package (and its video and audio renditions): "aes-128" encrypts every media segment (HLS AES-128,
    # the key served by the API to playback tokens: mpr_common.content_keys); None: in clear
    encryption: str | None = None
    # package: "per-title" chooses each rung's rate from an analysis of the source (mpr_common.per_title);
    # None or "fixed": the preset's ladder as it is
    ladder: LadderKind | None = None
    # a per-title package: the quality each rung aims at; None: mpr_common.per_title.DEFAULT_TARGET
    quality_target: QualityTarget | None = None
    # a per-title package's video rendition child: its rung's chosen rate settings
    rung: RungSettings | None = None


class JobProgress(Event, kw_only=True):
    job_id: str
    progress: float  # 0..100
    speed: float | None = None  # x realtime
    out_time: float | None = None  # seconds of output written
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)
    retry: int | None = None  # the request generation (JobRequested.retry); None: the current one


class JobCompleted(Event, kw_only=True):
    job_id: str
    output_key: str
    output_bucket: str
    output_keys: list[str] = msgspec.field(default_factory=list)
    output_size: int = 0
    duration: float | None = None  # seconds of media produced
    elapsed: float | None = None  # wall seconds spent
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)
    loudness: Loudness | None = None  # measured input loudness, when the job normalised it
    rendition: Rendition | None = None  # a package's child: what the manifests need
    log: str = ""  # what FFmpeg printed (errors and warnings, redacted), for the attempts log
    # the video output's quality against its source; None: not measured (no video, copied, a thumbnail)
    quality: Quality | None = None
    # a package: each video rendition's quality, by rendition name
    rendition_quality: dict[str, Quality] = msgspec.field(default_factory=dict)
    retry: int | None = None  # the request generation it ends; None: the current one
    # "not_kept": the output was made and judged by the job's keep_if/floors, and not uploaded (its
    # output_keys empty, output_size 0); ``keep`` says why, with the figures. Not a failure: never retried.
    outcome: JobOutcome = "kept"
    keep: KeepVerdict | None = None  # when the job had keep_if or a floor
    chosen_ladder: LadderChoice | None = None  # a per-title package: the ladder chosen and why
    # a chunked transcode's video chunk that ran the scene detector over its span (its source's scenes
    # were not kept yet): the cuts it found, in seconds of the source; None: it did not look. The join
    # keeps them all as the source's scenes once every chunk looked.
    scene_cuts: list[float] | None = None


class JobPlayable(Event, kw_only=True):
    """Published once per package (per request generation) on ``mpr.jobs.playable`` when it can be played
    before it completes: its master playlist lists every rung, and each rung's media playlist (an HLS
    EVENT playlist, growing in order) holds at least its first chunk. A package that completes without
    one (not progressive, or not chunked) is playable from its completion."""

    job_id: str
    output_key: str  # the master playlist
    output_bucket: str
    at: float = msgspec.field(default_factory=now)
    retry: int | None = None  # the request generation; None: the current one


class JobFailed(Event, kw_only=True):
    job_id: str
    error: str
    reason: FailureReason = "ffmpeg"
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)
    log: str = ""  # FFmpeg's stderr tail (redacted), for the attempts log
    retry: int | None = None  # the request generation it ends; None: the current one


AttemptOutcome = Literal["completed", "failed", "retrying", "handed_back", "cancelled"]


class JobAttempt(Event, kw_only=True):
    """One attempt at a job, as it ended: every delivery a transcoder ran, also those retried."""

    job_id: str
    attempt: int
    retry: int = 0  # the request generation (JobRequested.retry) it belongs to
    worker: str | None = None
    started_at: float
    ended_at: float = msgspec.field(default_factory=now)
    outcome: AttemptOutcome
    reason: FailureReason | None = None
    error: str | None = None
    log: str = ""  # FFmpeg's stderr tail (redacted)


class JobRetried(Event, kw_only=True):
    """A failed or cancelled job is run again: its row goes back to queued; the request follows."""

    job_id: str
    retry: int  # 1 for the first retry
    requested_by: str = "api"
    at: float = msgspec.field(default_factory=now)


class JobMoved(Event, kw_only=True):
    """A queued job moved to another queue class."""

    job_id: str
    priority: Priority
    at: float = msgspec.field(default_factory=now)


class JobCancel(Event, kw_only=True):
    job_id: str
    at: float = msgspec.field(default_factory=now)
    retry: int | None = None  # the request generation it stops; None: the current one


class DeadLetter(Event, kw_only=True):
    """A message given up on: the raw payload is kept so nothing is lost."""

    subject: str
    stream_seq: int | None = None
    deliveries: int = 0
    error: str
    payload: str  # the original bytes, decoded as UTF-8 with replacement
    job_id: str | None = None
    at: float = msgspec.field(default_factory=now)


# --- scans ----------------------------------------------------------------------------
class RefusedObject(msgspec.Struct, kw_only=True):
    """A media object a scan will not register, and why (e.g. an unsafe key)."""

    key: str
    reason: str


class ScanStatus(Event, kw_only=True):
    """A scan's progress on ``mpr.objects.scans``, in the objects stream after the objects it counts.

    The last one (``completed``) lets the catalog mark what a full listing no longer holds as removed."""

    scan_id: str
    bucket: str
    prefix: str = ""
    state: ScanState = "running"
    found: int = 0  # media objects published so far
    refused: list[RefusedObject] = msgspec.field(default_factory=list)
    refused_count: int = 0
    error: str | None = None
    started_at: float = msgspec.field(default_factory=now)
    at: float = msgspec.field(default_factory=now)


# --- request / reply -------------------------------------------------------------------
class ScanRequest(Event, kw_only=True):
    scan_id: str = msgspec.field(default_factory=new_id)
    prefix: str = ""
    # False: the scan runs in the background; only the first chunk (accepted) is sent back.
    reply_files: bool = True


class ScanChunk(Event, kw_only=True):
    """Replies to a ScanRequest come in chunks (each well under NATS's max payload); the last has
    done=True and the stream sequence after which the catalog has seen the whole scan."""

    scan_id: str
    keys: list[str] = msgspec.field(default_factory=list)
    refused: list[RefusedObject] = msgspec.field(default_factory=list)
    done: bool = True
    last_seq: int = 0


class AssetView(msgspec.Struct, kw_only=True):
    id: str
    bucket: str
    key: str
    etag: str
    size: int
    media_type: str | None
    probe_status: ProbeStatus
    probe_error: str | None
    info: MediaInfo | None
    removed: bool
    created_at: float
    updated_at: float
    # The subtitle files beside it (``<stem>.<language>.srt|vtt``), listed from its bucket when one asset
    # is read (GET /api/assets/{id}, GraphQL ``asset``): what a package of it would make tracks of. None:
    # not listed (a page of assets, or the listing failed).
    sidecars: list[SubtitleFile] | None = None


class JobView(msgspec.Struct, kw_only=True):
    id: str
    kind: JobKind
    status: JobStatus
    source_key: str
    created_at: float
    updated_at: float
    progress: float = 0.0
    source_bucket: str | None = None
    output_key: str | None = None
    output_bucket: str | None = None
    output_keys: list[str] = msgspec.field(default_factory=list)
    output_size: int | None = None
    preset: str | None = None
    start: float | None = None
    end: float | None = None
    error: str | None = None
    failure_reason: FailureReason | None = None
    speed: float | None = None
    attempts: int = 0
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    loudnorm: bool = False
    loudness: Loudness | None = None
    parent_id: str | None = None  # a package's child
    rendition: str | None = None
    children: list[str] = msgspec.field(default_factory=list)  # a package's child jobs
    priority: Priority = "normal"
    template: str | None = None
    rule: str | None = None
    retries: int = 0  # times it was run again after failing (POST /api/jobs/{id}/retry)
    # a package: since when it can be played (job.playable, else its completion), and where: the
    # master playlist's key (the catalog's record) and the API's link to it
    playable_at: float | None = None
    playable_key: str | None = None
    playable_url: str | None = None
    quality: Quality | None = None  # its video output's, when measured (see JobCompleted)
    rendition_quality: dict[str, Quality] = msgspec.field(default_factory=dict)  # a package's, by rung
    outcome: JobOutcome | None = None  # a completed job's (see JobCompleted.outcome)
    keep: KeepVerdict | None = None
    chosen_ladder: LadderChoice | None = None  # a per-title package's (see JobCompleted)


class ScanView(msgspec.Struct, kw_only=True):
    id: str
    bucket: str
    prefix: str
    state: ScanState
    found: int
    registered: int
    skipped: int
    removed: int
    refused: list[RefusedObject]
    refused_count: int
    error: str | None
    started_at: float
    finished_at: float | None
