"""The FFmpeg and ffprobe argument lists of a trim's steps (see :mod:`.smart_cut`), composed from
``ffmpeg.argv``'s global arguments and whitelisted inputs. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from ...ffmpeg.argv import (
    FFPROBE_ARGS,
    GLOBAL_ARGS,
    INPUT_FORMATS,
    LOCAL_CONCAT,
    LOCAL_FILES,
    size_limit,
    source_input,
    whitelist,
)
from .codecs import AUD, Container
from .planning import BASE, EPS, STREAM_FIELDS, CutPlan, VideoPacket


def _secs(t: Fraction | float) -> str:
    """Seconds for FFmpeg, rounded to the microsecond (its own resolution)."""
    us = round(Fraction(t) * 1_000_000)
    sign = "-" if us < 0 else ""
    whole, frac = divmod(abs(us), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


def read_range_args(
    url: str,
    protocols: str,
    first: float,
    last: float | None,
    picture: bool,
    local: Path,
    max_bytes: int | None,
    rotation: bool = False,
) -> list[str]:
    """The one read of the source: a stream copy of ``[first, last]`` (seconds from the source's start;
    None: to its end) into ``local``, timestamps = the source's + BASE; ``picture``: the first picture
    stream too (not only the first sound's); ``rotation``: the first frame also into
    :func:`rotation_file` (a MOV keeps the source's display matrix, NUT does not)."""
    # input seeking: HTTP range requests, from the key frame before
    args = [*GLOBAL_ARGS, *source_input(url, _secs(first) if first > 0 else None, protocols=protocols)]
    duration = [] if last is None else ["-t", _secs(last - first)]
    # the first picture that is not cover art, the first sound: what a trim keeps
    maps = ["-map", "0:V:0?"] if picture else []
    args += [*duration, *maps, "-map", "0:a:0?", "-c", "copy", "-output_ts_offset", _secs(first + BASE)]
    args += [*size_limit(max_bytes), "-f", "nut", str(local)]
    if rotation:
        args += ["-map", "0:V:0", "-c", "copy", "-frames:v", "1", "-f", "mov", str(rotation_file(local))]
    return args


def rotation_file(local: Path) -> Path:
    return local.with_name(local.stem + "-rotation.mov")


def local_copy_probe_args(path: Path) -> list[str]:
    """ffprobe's compact listing of the local copy's streams and packets (see ``parse_local_copy``)."""
    entries = f"stream={STREAM_FIELDS}:packet=stream_index,pts,dts,flags"
    args = [*FFPROBE_ARGS, *whitelist(LOCAL_FILES, "nut"), "-f", "nut"]
    return [*args, "-show_entries", entries, "-of", "compact", "-i", str(path)]


def rotation_probe_args(local: Path) -> list[str]:
    """ffprobe's JSON of the rotation of the MOV the read wrote beside the local copy."""
    args = [*FFPROBE_ARGS, *whitelist(LOCAL_FILES, INPUT_FORMATS)]
    args += ["-select_streams", "v:0", "-show_entries", "stream_side_data=rotation", "-of", "json"]
    return [*args, "-i", str(rotation_file(local))]


def _local_input(local: Path, offset: Fraction, seek: Fraction | None = None) -> list[str]:
    """The local copy as an input, its timestamps moved by ``offset``; ``seek``: start decoding at the
    key frame at or before that time (its own timestamps)."""
    args = ["-copyts", *whitelist(LOCAL_FILES, "nut")]
    if seek is not None:
        args += ["-seek_timestamp", "1", "-noaccurate_seek", "-ss", _secs(seek)]
    return [*args, "-itsoffset", _secs(offset), "-f", "nut", "-i", str(local)]


_TS_OUT = ["-muxdelay", "0", "-muxpreload", "0"]  # MPEG-TS keeps the timestamps it is given
SOUND = "sound.nut"


def _window(frames: Sequence[Fraction], everything: Sequence[Fraction]) -> tuple[Fraction, Fraction]:
    """Bounds halfway between the frames kept and their neighbours (robust to rounding either way)."""
    i = everything.index(frames[0])
    j = everything.index(frames[-1])
    lo = (everything[i - 1] + frames[0]) / 2 if i > 0 else frames[0] - EPS
    hi = (frames[-1] + everything[j + 1]) / 2 if j + 1 < len(everything) else frames[-1] + EPS
    return lo, hi


def encode_segment_args(
    local: Path,
    offset: Fraction,
    frames: Sequence[Fraction],
    everything: Sequence[Fraction],
    encoder: list[str],
    segment: Path,
    *,
    seek: Fraction | None = None,
    dts_shift: Fraction = Fraction(0),
) -> list[str]:
    """Re-encode ``frames`` (local times) into an MPEG-TS segment, times moved by ``offset``."""
    lo, hi = _window(frames, everything)
    args = [*GLOBAL_ARGS, *_local_input(local, offset, seek), "-map", "0:v:0", "-an", "-sn", "-dn"]
    args += ["-vf", f"trim=start={_secs(lo + offset)}:end={_secs(hi + offset)}"]
    args += ["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000", *encoder]
    if dts_shift:
        args += ["-bsf:v", f"setts=dts=DTS-{_secs(dts_shift)}/TB"]
    return [*args, *_TS_OUT, "-f", "mpegts", str(segment)]


def _annexb(codec: str) -> str:
    """Bitstream filters that make copied packets carry their parameter sets before every key frame."""
    return f"{'hevc' if codec == 'hevc' else 'h264'}_mp4toannexb,dump_extra=freq=keyframe"


COPIED = "copy-1.ts"  # the whole GOPs (the segment muxer's second file; its first: the GOPs before)


def copy_args(
    local: Path,
    offset: Fraction,
    plan: CutPlan,
    packets: Sequence[VideoPacket],
    codec: str,
    audio: tuple[Fraction, Fraction, list[str] | None] | None,
    work_dir: Path,
) -> list[str]:
    """One pass over the local copy: the whole GOPs of ``plan`` into the MPEG-TS segment
    ``work_dir/COPIED`` (the segment muxer splits at the first copied key frame: exact; the count of
    packets ends it), and the sound of ``audio`` = (start, end, encoder; None: copy) into
    ``work_dir/sound.nut``. Times are local ones; the outputs' are moved by ``offset``."""
    args = [*GLOBAL_ARGS, *_local_input(local, offset)]
    if plan.copy_count:
        args += ["-map", "0:v:0", "-c:v", "copy", "-bsf:v", _annexb(codec)]
        args += ["-frames:v", str(plan.copy_from + plan.copy_count), *_TS_OUT]
        if plan.copy_from:
            ka = packets[plan.copy_from].pts
            before = max((p.pts for p in packets if p.pts < ka), default=ka - EPS)
            args += ["-f", "segment", "-segment_format", "mpegts", "-segment_start_number", "0"]
            args += ["-segment_times", _secs((before + ka) / 2 + offset), str(work_dir / "copy-%d.ts")]
        else:
            args += ["-f", "mpegts", str(work_dir / COPIED)]
    if audio is not None:
        a_start, a_end, encoder = audio
        args += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
        if encoder is None:
            # packets shown in [start, end); -ss moves the output's times back, -output_ts_offset undoes it
            a_from = a_start - EPS + offset
            args += ["-c:a", "copy", "-ss", _secs(a_from), "-to", _secs(a_end - EPS + offset)]
            args += ["-output_ts_offset", _secs(a_from)]
        else:
            window = f"atrim=start={_secs(a_start + offset)}:end={_secs(a_end + offset)}"
            args += ["-af", window, *encoder]
        args += ["-f", "nut", str(work_dir / SOUND)]
    return args


def final_mux_args(
    segments: Sequence[Path],
    audio: Path | None,
    codec: str,
    container: Container,
    output: Path,
    max_bytes: int | None,
    rotation: int = 0,
) -> list[str]:
    """Join the segments (MPEG-TS: byte by byte) and the sound into the output, times back by BASE.
    Outside MPEG-TS the delimiters the segments' muxer added go: the copied packets are then the
    source's, byte for byte (key frames aside, which carry their parameter sets)."""
    args = [*GLOBAL_ARGS, "-copyts", *whitelist(LOCAL_CONCAT, "mpegts"), "-f", "mpegts"]
    args += ["-i", "concat:" + "|".join(str(s) for s in segments)]
    maps = ["-map", "0:v:0"]
    if audio is not None:
        args += [*whitelist(LOCAL_FILES, "nut"), "-f", "nut", "-i", str(audio)]
        maps += ["-map", "1:a:0"]
    args += [*maps, "-c", "copy", "-output_ts_offset", str(-BASE)]
    if container.muxer != "mpegts" and codec in AUD:
        args += ["-bsf:v", f"filter_units=remove_types={AUD[codec]}"]
    return [*args, *_output_tail(container, max_bytes, rotation), str(output)]


def _output_tail(container: Container, max_bytes: int | None, rotation: int = 0) -> list[str]:
    # Picture and sound are what a trim keeps: the source's tags are left out, whichever way the
    # output was made. The rotation is kept, as the tag MP4/MOV muxers turn into a display matrix.
    args = ["-map_metadata", "-1"]
    if rotation and container.rotation:
        args += ["-metadata:s:v:0", f"rotate={rotation}"]
    args += size_limit(max_bytes)
    if container.faststart:
        args += ["-movflags", "+faststart"]
    return [*args, "-f", container.muxer]


def reencode_args(
    local: Path,
    offset: Fraction,
    video: tuple[Sequence[Fraction], Sequence[Fraction]] | None,
    audio: tuple[Fraction, Fraction, list[str]] | None,
    container: Container,
    output: Path,
    max_bytes: int | None,
    rotation: int = 0,
) -> list[str]:
    """The range re-encoded: ``video`` = (frames kept, every frame) with the container's encoder,
    ``audio`` = (start, end, encoder); local times; the output's times start at ``offset`` - BASE."""
    args = [*GLOBAL_ARGS, *_local_input(local, offset)]
    back = f"{_secs(Fraction(BASE))}/TB"
    if video is not None:
        assert container.video_encoder is not None
        lo, hi = _window(*video)
        args += [
            "-map",
            "0:v:0",
            "-vf",
            f"trim=start={_secs(lo + offset)}:end={_secs(hi + offset)},setpts=PTS-{back}",
        ]
        args += [*_frame_times(container), *container.video_encoder]
    if audio is not None:
        a_start, a_end, encoder = audio
        window = f"atrim=start={_secs(a_start + offset)}:end={_secs(a_end + offset)},asetpts=PTS-{back}"
        args += ["-map", "0:a:0", "-af", window, *encoder]
    return [*args, "-sn", "-dn", *_output_tail(container, max_bytes, rotation), str(output)]


def _frame_times(container: Container) -> list[str]:
    """Frames keep their timestamps (variable rates too), at a resolution that rounds none of them."""
    return ["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000"] if container.passthrough else []


def direct_reencode_args(
    url: str,
    protocols: str,
    start: float,
    end: float,
    container: Container,
    output: Path,
    max_bytes: int | None,
) -> list[str]:
    """The range re-encoded straight from the source (one read): FFmpeg's accurate seek decodes from
    the key frame before ``start`` and drops what comes before it; ``-t`` ends the picture at the end
    and cuts the sound there to the sample."""
    assert container.video_encoder is not None
    args = [*GLOBAL_ARGS, *source_input(url, _secs(start) if start > 0 else None, protocols=protocols)]
    if math.isfinite(end):
        args += ["-t", _secs(end - start)]
    args += ["-map", "0:V:0", "-map", "0:a:0?", *_frame_times(container), *container.video_encoder]
    args += [*container.audio_encoder, "-sn", "-dn"]
    return [*args, *_output_tail(container, max_bytes), str(output)]


def audio_copy_args(
    local: Path, start: Fraction, end: Fraction, container: Container, output: Path, max_bytes: int | None
) -> list[str]:
    """Sound only, copied: packets shown in ``[start, end)`` (local times); output times from 0."""
    args = [
        *GLOBAL_ARGS,
        *_local_input(local, Fraction(0)),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-c:a",
        "copy",
    ]
    args += ["-ss", _secs(start - EPS), "-to", _secs(end - EPS)]
    return [*args, *_output_tail(container, max_bytes), str(output)]


# The source's seconds a copying trim's command lists after its start: its first packet of each stream is
# among them (at or before the start: from the key frame before it).
FIRST_PACKETS_SECONDS = 0.5


def first_packets_output(streams: Sequence[str], path: Path) -> list[str]:
    """A second output of a copying trim's command (``streams``: its ``-map`` options, the same as its
    first output's): one line per packet copied in the first :data:`FIRST_PACKETS_SECONDS` (framecrc:
    stream, decode and presentation times in each stream's time base), on the command's timeline before
    its muxer moves it to start at 0 (see :func:`.planning.copy_origin`)."""
    return [*streams, "-c", "copy", "-t", _secs(FIRST_PACKETS_SECONDS), "-f", "framecrc", str(path)]


def cut_probe_args(path: Path, demuxer: str) -> list[str]:
    """ffprobe's JSON of the duration of a trim's output written by one command (``path``, read by
    ``demuxer`` only) and the presentation time of its first stream's first packet."""
    args = [*FFPROBE_ARGS, *whitelist(LOCAL_FILES, demuxer), "-f", demuxer, "-select_streams", "0"]
    args += ["-read_intervals", "%+#1", "-show_entries", "format=duration:packet=pts_time", "-of", "json"]
    return [*args, "-i", str(path)]
