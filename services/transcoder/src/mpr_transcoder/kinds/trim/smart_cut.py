"""Frame-accurate trims ("smart cut"): the output holds the frames shown in ``[start, end)``, so it lasts
``end - start`` within one frame, and keeps the source's codec; only the partial GOPs at both edges are
re-encoded.

The steps, each FFmpeg run through the job's :data:`Runner` (its limits, cancel signal and progress):

1. **One read over the network.** A stream copy of the range, from the key frame at or before the start
   to a little past the end, into a local NUT file (NUT keeps every codec and the source's time bases).
   Its timestamps are the source's presentation times plus :data:`BASE` seconds: NUT cannot hold the
   negative decode times that B-frames give at a source's start, and a known offset keeps every later
   step exact. Everything below reads that local file only.
2. **ffprobe** lists the local file's packets; :func:`plan_cut` (pure) picks the frames whose timestamp
   falls in ``[start, end)`` and the *clean* key frames (no frame after them in decode order is shown
   before them: closed GOPs) that bound the whole GOPs inside the range.
3. **Concurrently**: the whole GOPs are copied (the segment muxer splits exactly at a key frame) into
   an MPEG-TS segment whose key frames carry their own parameter sets; the frames before the first and
   after the last whole GOP are decoded and re-encoded into MPEG-TS segments by an encoder matching the
   source (codec, profile, level, pixel format, colour; size, sample aspect ratio and timestamps pass
   through unchanged), without B-frames; the sound's packets shown in ``[start, end)`` are copied
   (re-encoded to the sample when the container does not take the codec, or it is lossless).
4. **One final mux** joins the segments (MPEG-TS files joined byte by byte: the timestamps simply go on)
   with the sound into the output's container, ``+faststart`` for MP4/MOV.

Decode times: the copied GOPs decode ``delay`` frames before they are shown (B-frames); the re-encoded
head has none, so its decode times are moved back by that delay (``setts``) to stay below the copied
GOPs'. The tail starts at a key frame shown after every copied frame: its decode times are above theirs.

Full re-encodes of the range (mode "reencode", still frame- and sample-accurate, the source read once):
- a source codec other than H.264 and HEVC, or an output container that cannot hold it: FFmpeg's own
  accurate seek straight from the source, the encoders the container's (:data:`CONTAINERS`);
- what the local copy shows cannot be matched (interlaced, a profile or pixel format the encoders lack):
  from the local copy, the container's encoders;
- no whole clean GOP in the range (a range inside one GOP; open GOPs, such as HEVC's CRA with leading
  pictures or x264's ``--open-gop``): from the local copy, the matching encoder.
Sound-only outputs (or sources) copy the sound's packets, or re-encode them as above.

The output holds the first picture (not cover art) and the first sound; the picture's rotation (an MP4's
display matrix) is kept in MP4/MOV outputs; the source's tags are not. The ``out_time`` of the steps'
progress reports is on their own timeline (BASE plus source or output seconds); only the final mux's
counts the output's seconds from 0.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Sequence
from fractions import Fraction
from pathlib import Path

from mpr_common.events import MediaInfo

from ...ffmpeg import FfmpegError, Runner
from ...ffmpeg.argv import NETWORK_PROTOCOLS
from ...ffmpeg.probe import ffprobe_output
from ...together import together
from .argv import (
    COPIED,
    SOUND,
    audio_copy_args,
    copy_args,
    direct_reencode_args,
    encode_segment_args,
    final_mux_args,
    local_copy_probe_args,
    read_range_args,
    reencode_args,
    rotation_probe_args,
)
from .codecs import ROTATION_CODECS, Container, container_for, matching_encoder, sound_encoder
from .planning import (
    BASE,
    EPS,
    READ_AFTER,
    READ_BEFORE,
    READ_RETRY_BEFORE,
    LocalCopy,
    TrimRangeError,
    TrimResult,
    check_range,
    describe_range,
    floor_us,
    parse_local_copy,
    parse_rotation,
    plan_cut,
    sound_end,
)

PROBE_TIMEOUT = 120.0


async def probe_local_copy(path: Path) -> LocalCopy:
    """What the local copy holds: one ffprobe for its streams and packets."""
    return parse_local_copy(
        await ffprobe_output(local_copy_probe_args(path), PROBE_TIMEOUT, "the range read")
    )


async def probe_rotation(local: Path) -> int:
    """The rotation of the source's picture, from the MOV the read wrote beside the local copy (0 when
    that cannot be read: a tag is not worth failing the job for)."""
    try:
        text = await ffprobe_output(rotation_probe_args(local), PROBE_TIMEOUT, "the range read")
        return parse_rotation(json.loads(text or "{}"))
    except (FfmpegError, ValueError):
        return 0


async def _read_range(
    url: str,
    info: MediaInfo,
    start: float,
    end: float,
    local: Path,
    run: Runner,
    protocols: str,
    picture: bool,
    rotation: bool,
    max_bytes: int | None,
) -> LocalCopy:
    """Read the range once; again from earlier in the rare case the first key frame read is shown after
    the start (a demuxer that seeks by decode time further back than READ_BEFORE covers)."""
    to_the_end = not math.isfinite(end) or (info.duration is not None and end >= info.duration)
    last = None if to_the_end else end + READ_AFTER
    first = max(0.0, start - READ_BEFORE)
    while True:
        await run(read_range_args(url, protocols, first, last, picture, local, max_bytes, rotation))
        copy = await probe_local_copy(local)
        keys = [p.pts for p in copy.packets if p.key]
        starts = keys[:1] if copy.video is not None else sorted(copy.audio_pts)[:1]
        if first == 0.0 or not starts or starts[0] <= Fraction(start) + BASE + EPS:
            return copy
        first = first - READ_RETRY_BEFORE if first > READ_RETRY_BEFORE else 0.0


def _origin(t0: Fraction) -> float:
    """The source's second of local time ``t0``, where the output starts (floored as the offsets are)."""
    return round(float(floor_us(t0) - BASE), 6)


async def _upright() -> int:
    return 0


async def smart_trim(
    url: str,
    info: MediaInfo,
    start: float | None,
    end: float | None,
    work_dir: Path,
    output: Path,
    run: Runner,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    name: str = "",
    max_bytes: int | None = None,
) -> TrimResult:
    """Write the frames of ``url`` shown in ``[start, end)`` (seconds from the source's start) to
    ``output``, whose suffix picks the container (:data:`CONTAINERS`), keeping the source's codec where
    it can (see the module's doc).

    ``work_dir`` holds the scratch files (about the size of the range); ``name`` (the object's key)
    names the source in messages; ``max_bytes`` bounds the local copy and the output (``-fs``).
    Raises :class:`TrimRangeError` for a range the source does not hold, ``ValueError`` for an output
    type a trim cannot write, ``FfmpegError`` (from ``run``) when FFmpeg fails."""
    container = container_for(output)
    s, e = check_range(info, start, end)
    if "|" in str(work_dir):
        raise ValueError("the work dir's path holds '|', the concat protocol's separator")
    video_codec = info.video_codec if container.video_encoder is not None else None
    if video_codec is not None and video_codec not in container.video_copy:
        # No codec to keep (or the container cannot hold it): nothing is copied, so nothing needs a
        # local copy either; FFmpeg's own accurate seek reads the range once.
        await run(direct_reencode_args(url, protocols, s, e, container, output, max_bytes))
        last = e if math.isfinite(e) else (info.duration or s)
        return TrimResult(round(last - s, 6), "reencode", s)

    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    local = work_dir / "range.nut"
    turned = container.rotation and video_codec in ROTATION_CODECS
    picture = video_codec is not None
    copy = await _read_range(url, info, s, e, local, run, protocols, picture, turned, max_bytes)
    start_t = Fraction(s) + BASE
    end_t = Fraction(e) + BASE if math.isfinite(e) else Fraction(10**9)
    audio_pts = sorted(t for t in copy.audio_pts if start_t - EPS <= t < end_t - EPS)
    if copy.video is None or not copy.packets or container.video_encoder is None:
        return await _trim_sound(
            copy, audio_pts, start_t, end_t, local, container, output, run, name, max_bytes
        )
    # Only the last FFmpeg step needs the rotation: its probe runs beside the others.
    rotation = asyncio.ensure_future(probe_rotation(local) if turned else _upright())
    try:
        return await _trim_video(
            copy, audio_pts, start_t, end_t, work_dir, container, output, run, name, max_bytes, rotation
        )
    finally:
        rotation.cancel()


async def _trim_video(
    copy: LocalCopy,
    audio_pts: Sequence[Fraction],
    start_t: Fraction,
    end_t: Fraction,
    work_dir: Path,
    container: Container,
    output: Path,
    run: Runner,
    name: str,
    max_bytes: int | None,
    rotation: Awaitable[int],
) -> TrimResult:
    """Picture (and sound) from the local copy: the smart cut, or a re-encode of the range."""
    assert copy.video is not None
    local = work_dir / "range.nut"
    plan = plan_cut(copy.packets, start_t, end_t, name, copy=not copy.untimed)
    everything = sorted({p.pts for p in copy.packets})
    codec = str(copy.video.get("codec_name"))
    encoder = matching_encoder(copy.video) if codec in container.video_copy else None
    sound_options = sound_encoder((copy.audio or {}).get("codec_name"), container)
    if encoder is None:
        # The output starts at the start: the sound sample-accurate, the first frame within one frame.
        t0 = min(start_t, plan.frames[0])
        offset = BASE - floor_us(t0)
        reencoded = sound_options or container.audio_encoder
        sound = (start_t, min(end_t, plan.frame_end), reencoded) if audio_pts else None
        video = (plan.frames, everything)
        await run(reencode_args(local, offset, video, sound, container, output, max_bytes, await rotation))
        return TrimResult(round(float(plan.frame_end - t0), 6), "reencode", _origin(t0))

    copy_sound = sound_options is None
    if not audio_pts:
        t0 = plan.frames[0]
    else:  # whichever comes first starts at 0; a re-encoded sound starts at the start
        t0 = min(plan.frames[0], audio_pts[0] if copy_sound else start_t)
    # Every time moves by offset: t0 lands on BASE (never below it: see _floor_us), which the final
    # mux takes off.
    offset = BASE - floor_us(t0)
    audio = (start_t, end_t, sound_options) if audio_pts else None
    steps, segments = [], []
    if plan.head:
        segments.append(work_dir / "head.ts")
        shift = plan.head_dts_shift
        steps.append(
            encode_segment_args(local, offset, plan.head, everything, encoder, segments[-1], dts_shift=shift)
        )
    if plan.copy_count:
        segments.append(work_dir / COPIED)
    if plan.copy_count or audio is not None:
        steps.append(copy_args(local, offset, plan, copy.packets, codec, audio, work_dir))
    if plan.tail:
        segments.append(work_dir / "tail.ts")
        steps.append(
            encode_segment_args(
                local, offset, plan.tail, everything, encoder, segments[-1], seek=plan.tail_key
            )
        )
    await together(*(run(args) for args in steps))
    sound_file = work_dir / SOUND if audio is not None else None
    await run(final_mux_args(segments, sound_file, codec, container, output, max_bytes, await rotation))
    ends = [plan.frame_end]
    if audio_pts:
        ends.append(sound_end(copy.audio_pts, audio_pts) if copy_sound else min(end_t, plan.frame_end))
    return TrimResult(round(float(max(ends) - t0), 6), plan.mode, _origin(t0))


async def _trim_sound(
    copy: LocalCopy,
    audio_pts: Sequence[Fraction],
    start_t: Fraction,
    end_t: Fraction,
    local: Path,
    container: Container,
    output: Path,
    run: Runner,
    name: str,
    max_bytes: int | None,
) -> TrimResult:
    """Sound only (the source has no picture, or the container holds none): copied packet by packet
    when the container takes the codec, else re-encoded sample-accurately (see :func:`sound_encoder`)."""
    if copy.audio is None or not audio_pts:
        raise TrimRangeError(f"{describe_range(start_t, end_t, name)} holds no sound or picture")
    encoder = sound_encoder(copy.audio.get("codec_name"), container)
    if encoder is None:
        await run(audio_copy_args(local, start_t, end_t, container, output, max_bytes))
        ended = sound_end(copy.audio_pts, audio_pts)
        return TrimResult(round(float(ended - audio_pts[0]), 6), "copy", _origin(audio_pts[0]))
    end_sound = min(end_t, sound_end(copy.audio_pts, audio_pts))
    offset = BASE - floor_us(start_t)
    await run(reencode_args(local, offset, None, (start_t, end_sound, encoder), container, output, max_bytes))
    return TrimResult(round(float(end_sound - start_t), 6), "reencode", _origin(start_t))
