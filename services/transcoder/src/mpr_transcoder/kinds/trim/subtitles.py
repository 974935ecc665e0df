"""The source's text subtitles (its streams, its sidecars) kept by a trim, cues on the output's timeline.

FFmpeg's own cut of a subtitle stream is not exact (measured on an SRT stream in Matroska, FFmpeg 5.1,
input or output ``-ss``/``-to`` with ``-c:s mov_text``): a cue that starts before the range and ends
inside it is dropped, and one that starts inside and ends after it keeps its full length past the
output's end. So each text stream is converted to WebVTT by one FFmpeg read of the source from its
start to the range's end (text only: no picture or sound decoded; a cue may start long before the
range), its cues cut to the range and moved onto the output's timeline in pure Python
(:func:`~mpr_transcoder.webvtt.window`), and the files muxed beside the cut's picture and sound in one
stream-copy pass (the cut's time 0 is known only once it is planned: :attr:`.planning.TrimResult.origin`).

The sidecars beside the source (``talk.en.srt``, found when the job starts: ``subtitle_sources``) are
kept too, after the streams, each converted from its file by FFmpeg's SRT and WebVTT demuxers alone.

Kept in MP4/MOV as mov_text, in Matroska as SRT, in WebM as WebVTT, each with its language (MP4 and
Matroska write ISO 639-2 codes), title and default/forced dispositions; other containers hold no
subtitles. Bitmap subtitles (PGS, DVD, DVB) are left out: they cannot become text."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpr_common.events import MediaInfo, SubtitleStream
from mpr_common.languages import ISO_639_2T
from mpr_common.subtitles import MAX_SUBTITLE_BYTES, is_text

from ... import webvtt
from ...ffmpeg.argv import GLOBAL_ARGS, LOCAL_FILES, fmt, size_limit, source_input, whitelist
from ...job_errors import JobError
from ...subtitle_sources import SubtitleInput
from .codecs import Container
from .planning import READ_AFTER

# The demuxer that reads back what each container's muxer wrote.
_DEMUXERS = {"mp4": "mov", "mov": "mov", "matroska": "matroska", "webm": "matroska"}


@dataclass(frozen=True, slots=True)
class KeptTrack:
    """A subtitle track the output gets: ``stem`` names its files in the work dir."""

    stem: str
    language: str | None
    title: str | None = None
    default: bool = False
    forced: bool = False


@dataclass(frozen=True, slots=True)
class Kept:
    """What a trim keeps of the source's subtitles: its text streams, then its sidecars; their files in
    ``work_dir``."""

    streams: list[SubtitleStream]
    sidecars: list[SubtitleInput]
    work_dir: Path

    @property
    def tracks(self) -> list[KeptTrack]:
        return [stream_track(s) for s in self.streams] + [
            sidecar_track(n, sc) for n, sc in enumerate(self.sidecars)
        ]

    def conversions(self, url: str, protocols: str, end: float) -> list[list[str]]:
        """The FFmpeg runs converting every track to WebVTT (:func:`converted_file`): one read of the
        source for its streams, one per sidecar."""
        runs = [convert_args(url, protocols, self.streams, end, self.work_dir)] if self.streams else []
        sidecars = self.tracks[len(self.streams) :]
        return runs + [
            sc.webvtt_args(converted_file(self.work_dir, t))
            for t, sc in zip(sidecars, self.sidecars, strict=True)
        ]


def kept(info: MediaInfo, sidecars: Sequence[SubtitleInput], container: Container, work_dir: Path) -> Kept:
    """The subtitles a trim into ``container`` keeps: the source's text streams and ``sidecars``, if
    it holds subtitles at all."""
    if container.subtitle_codec is None or container.muxer not in _DEMUXERS:
        return Kept([], [], work_dir)
    return Kept([s for s in info.subtitle_streams if is_text(s)], list(sidecars), work_dir)


def demuxer(container: Container) -> str:
    """The demuxer that reads back what ``container``'s muxer wrote (one that holds subtitles)."""
    return _DEMUXERS[container.muxer]


def stream_track(stream: SubtitleStream) -> KeptTrack:
    return KeptTrack(f"stream-{stream.index}", stream.language, stream.title, stream.default, stream.forced)


def sidecar_track(n: int, sidecar: SubtitleInput) -> KeptTrack:
    return KeptTrack(f"sidecar-{n}", sidecar.track.language)


def converted_file(work_dir: Path, track: KeptTrack) -> Path:
    return work_dir / f"{track.stem}-source.vtt"


def trimmed_file(work_dir: Path, track: KeptTrack) -> Path:
    return work_dir / f"{track.stem}.vtt"


def convert_args(
    url: str, protocols: str, streams: Sequence[SubtitleStream], end: float, work_dir: Path
) -> list[str]:
    """One read of the source converting each of ``streams`` to a WebVTT file (:func:`converted_file`),
    from the source's start (a cue shown in the range may start long before it) to a little past
    ``end`` (seconds; infinite: to the source's end)."""
    stop = fmt(end + READ_AFTER) if end != float("inf") else None
    args = [*GLOBAL_ARGS, *source_input(url, stop=stop, protocols=protocols)]
    for s in streams:
        args += ["-map", f"0:s:{s.index}", "-vn", "-an", "-dn", "-c:s", "webvtt"]
        args += [
            *size_limit(MAX_SUBTITLE_BYTES),
            "-f",
            "webvtt",
            str(converted_file(work_dir, stream_track(s))),
        ]
    return args


def trim_cues(cues: list[webvtt.Cue], start: float, origin: float, duration: float) -> list[webvtt.Cue]:
    """The cues of a trim's output that shows the source from ``start`` (seconds) and whose time 0 is
    the source's ``origin`` (the first frame kept, within a frame of ``start``), ``duration`` long: cues
    outside it are left out, cues across either edge cut to it."""
    zero = round(origin * 1000)
    return webvtt.window(cues, max(zero, round(start * 1000)), zero + round(duration * 1000), origin=zero)


def write_trimmed(
    converted: Path, out: Path, start: float, origin: float, duration: float, name: str
) -> None:
    """The WebVTT FFmpeg converted (``converted``), cut to the output (``out``). Blocking."""
    try:
        cues = webvtt.parse(converted.read_text(encoding="utf-8", errors="replace"))
    except webvtt.WebVTTError as exc:
        raise JobError(f"the subtitles of {name}: {exc}", "source") from None
    out.write_text(webvtt.serialize(trim_cues(cues, start, origin, duration)), encoding="utf-8")


def container_language(language: str | None) -> str:
    """A stream's language (:func:`~mpr_common.audio_tracks.language_tag`'s tag) as the three letters of
    ISO 639-2 (terminological) that MP4's language field holds; ``und`` when there is none."""
    primary = (language or "").split("-", 1)[0]
    if len(primary) == 3:
        return primary
    return ISO_639_2T.get(primary, "und")


def mux_args(
    cut: Path,
    container: Container,
    tracks: Sequence[KeptTrack],
    work_dir: Path,
    output: Path,
    max_bytes: int | None,
    *,
    keep_tags: bool = False,
) -> list[str]:
    """The cut (picture and sound, copied as they are) and the trimmed WebVTT of each of ``tracks``
    (:func:`trimmed_file`) into ``output``, the cues as the container's subtitle codec. ``keep_tags``:
    the cut's tags (its own and its streams') are kept, as a trim by one command keeps the source's;
    else none are (a frame-accurate trim keeps none). The cut keeps its timeline (``-copyts``): the cues
    were placed on it, and FFmpeg would otherwise move a cut whose first frame is after its time 0 (a
    re-encode without sound from between two frames) to start at 0, the picture ahead of its cues."""
    assert container.subtitle_codec is not None
    args = [*GLOBAL_ARGS, "-copyts", *whitelist(LOCAL_FILES, demuxer(container)), "-i", str(cut)]
    for t in tracks:
        args += [*whitelist(LOCAL_FILES, "webvtt"), "-f", "webvtt", "-i", str(trimmed_file(work_dir, t))]
    args += ["-map", "0"]
    for n in range(len(tracks)):
        args += ["-map", f"{n + 1}:0"]
    args += ["-c", "copy", "-c:s", container.subtitle_codec]
    if not keep_tags:
        args += ["-map_metadata", "-1"]
    for n, s in enumerate(tracks):
        args += [f"-metadata:s:s:{n}", f"language={container_language(s.language)}"]
        if s.title:
            args += [f"-metadata:s:s:{n}", f"title={s.title}"]
        flags = [f for f, on in (("default", s.default), ("forced", s.forced)) if on]
        args += [f"-disposition:s:{n}", "+".join(flags) or "0"]
    args += size_limit(max_bytes)
    if container.faststart:
        args += ["-movflags", "+faststart"]
    return [*args, "-f", container.muxer, str(output)]


async def write_all(
    work_dir: Path, tracks: Sequence[KeptTrack], start: float, origin: float, duration: float, name: str
) -> None:
    def write() -> None:
        for t in tracks:
            write_trimmed(
                converted_file(work_dir, t), trimmed_file(work_dir, t), start, origin, duration, name
            )

    await asyncio.to_thread(write)
