"""ffprobe: technical metadata of media read over a (presigned) URL, never a full download; and what
every FFmpeg/ffprobe child shares: the redaction of URLs in what they print, and the limits they run under."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import resource
import signal
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .audio_tracks import MAX_AUDIO_STREAMS, audio_stream
from .colour import hdr_metadata
from .events import PROBE_VERSION, ContentLight, MasteringDisplay, MediaInfo
from .subtitles import MAX_SUBTITLE_STREAMS, subtitle_stream

# Demuxers MPR accepts as input: the supported file types, never playlists or concat lists.
INPUT_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mp3,wav,flac,aac,ogg"
NETWORK_PROTOCOLS = "http,https,tcp,tls,crypto"


class ProbeError(RuntimeError):
    pass


# FFmpeg/ffprobe messages that mean the source could not be reached, not that it is bad media.
NETWORK_ERROR_MARKERS = (
    "Connection refused",
    "Connection reset",
    "Connection timed out",
    "timed out",
    "Server returned 5",
    "Server returned 403",
    "Network is unreachable",
    "Input/output error",
    "Temporary failure in name resolution",
    "Broken pipe",
)


def looks_like_network_error(tail: str) -> bool:
    return any(m in tail for m in NETWORK_ERROR_MARKERS)


# --- redaction ---------------------------------------------------------------------------------------
# FFmpeg and ffprobe print their input URL in front of most errors ("<url>: Invalid data found …"). A
# presigned URL is a credential (access key id, signature, valid for hours): it must never reach an
# error, a log line or an event. Every text read from their stderr goes through redact().

_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_TRAILING = ":;,.)]}!"
# Query parameters that carry credentials, also outside a URL (a URL cut by a line break, a quoted piece).
_CREDENTIAL_PARAM = re.compile(
    r"(?i)[?&]?\b(?:X-Amz-[A-Za-z-]+|AWSAccessKeyId|Signature|Expires|Policy|Key-Pair-Id)=[^&\s\"'<>]*"
)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b")


def _strip_url(match: re.Match[str]) -> str:
    url = match.group(0)
    trail = len(url) - len(url.rstrip(_TRAILING))
    url, tail = (url[:-trail], url[-trail:]) if trail else (url, "")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<url>" + tail
    if not (parts.query or parts.fragment or "@" in parts.netloc):
        return url + tail
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + tail


def redact(text: str, names: Mapping[str, str] | None = None) -> str:
    """``text`` without credentials: each URL in ``names`` becomes its name (the object's key); any
    other URL loses its query string, fragment and user info; credential parameters and AWS access key
    ids left anywhere else are removed."""
    for url, name in (names or {}).items():
        if url:
            text = text.replace(url, name)
    text = _URL_RE.sub(_strip_url, text)
    text = _CREDENTIAL_PARAM.sub("", text)
    return _ACCESS_KEY_ID.sub("<access key id>", text)


# --- the limits every FFmpeg/ffprobe child runs under --------------------------------------------------

PR_SET_PDEATHSIG = 1
PR_SET_THP_DISABLE = 41


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None


_PRCTL = _load_prctl()


def child_setup(max_memory: int | None = None, nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn`` for FFmpeg and ffprobe: the child is SIGKILLed when its parent dies (even by
    ``kill -9``; Linux ``PR_SET_PDEATHSIG``, tied to the thread that starts it: the event loop's), and its
    address space is capped at ``max_memory`` bytes (``RLIMIT_AS``; None or 0: no cap), so that a decoder
    asked for a huge picture fails to allocate instead of growing until the OOM killer stops the pod.

    Everything is resolved here, in the parent: the function runs between fork and exec, where it must
    not import, lock or allocate much. ``nice`` > 0 lowers the child's CPU priority (background work such
    as the catalog's probes yields to listing and ingestion).

    Transparent huge pages are off in the child (``PR_SET_THP_DISABLE``): x264 asks for them
    (``madvise``) on its frame buffers from 720p up, and each FFmpeg run then pays to zero and compact
    2 MiB pages as it starts. Measured on a 2-core VM, a 12 s 1080p chunk of a package: 1.25 to 1.6 s of
    system time with them, 0.4 s without, and 0.2 to 0.5 s more user time without (the TLB); a chunked
    package starts a run per chunk and rung, and paid that start 24 times for a 60 s title."""
    parent = os.getpid()
    setnice = os.nice
    prctl = _PRCTL
    limit: tuple[int, int] | None = None
    if max_memory:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = max_memory if hard == resource.RLIM_INFINITY else min(max_memory, hard)
        limit = (cap, cap)
    setrlimit = resource.setrlimit
    rlimit_as = resource.RLIMIT_AS
    getppid = os.getppid
    kill = os.kill
    getpid = os.getpid
    sigkill = signal.SIGKILL

    def setup() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(sigkill), 0, 0, 0)
            prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
            if getppid() != parent:  # the parent died before prctl: nobody would send the signal
                kill(getpid(), sigkill)
        if limit is not None:
            setrlimit(rlimit_as, limit)
        if nice > 0:
            setnice(nice)

    return setup


def _ffprobe(protocols: str) -> list[str]:
    """ffprobe, quiet, reading only the accepted protocols and file types."""
    return [
        "ffprobe",
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        protocols,
        "-format_whitelist",
        INPUT_FORMATS,
    ]


def ffprobe_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    return [
        *_ffprobe(protocols),
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "-i",
        url,
    ]


def _num(value: Any, cast=float) -> Any:
    try:
        return cast(value) if value not in (None, "N/A", "") else None
    except (TypeError, ValueError):
        return None


def _rate(value: str | None) -> float | None:
    if not value or value in ("0/0", "N/A"):
        return None
    try:
        r = Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return round(float(r), 3) if r > 0 else None


def _read_colour(info: MediaInfo, video: dict[str, Any], frames: list[Any]) -> None:
    """The video's colour tags and HDR metadata: from the stream's side data (Matroska, MP4 with mdcv and
    clli boxes), else from its first frame's when the probe showed frames (:func:`first_frame_args`)."""
    for field in ("color_transfer", "color_primaries", "color_space"):
        value = video.get(field)
        if isinstance(value, str) and value not in ("unknown", "reserved"):
            setattr(info, field, value)
    side = list(video.get("side_data_list") or [])
    index = video.get("index")
    for frame in frames:
        if isinstance(frame, dict) and frame.get("stream_index") == index:
            side += frame.get("side_data_list") or []
    info.mastering_display, info.content_light = hdr_metadata(side)


def first_frame_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """ffprobe of the first video frame's side data, for an HDR source whose container does not carry
    its mastering metadata (HEVC in MP4: SEI only). Decodes one frame: run only for HDR sources."""
    return [
        *_ffprobe(protocols),
        "-select_streams",
        "v:0",
        "-read_intervals",
        "%+#1",
        "-show_entries",
        "frame=stream_index:frame_side_data",
        "-of",
        "json",
        "-i",
        url,
    ]


def frame_hdr_metadata(data: dict[str, Any]) -> tuple[MasteringDisplay | None, ContentLight | None]:
    """What :func:`first_frame_args` printed (parsed JSON): the first frame's mastering display and
    content light level, each None when absent."""
    frames = data.get("frames") or []
    return hdr_metadata(
        entry for frame in frames if isinstance(frame, dict) for entry in frame.get("side_data_list") or []
    )


def parse_ffprobe(data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    audio = audios[0] if audios else None
    duration = _num(fmt.get("duration"))
    if duration is None:
        duration = max((d for s in streams if (d := _num(s.get("duration"))) is not None), default=None)
    info = MediaInfo(
        format_name=fmt.get("format_name"),
        duration=round(duration, 3) if duration is not None else None,
        bit_rate=_num(fmt.get("bit_rate"), int),
        streams=len(streams),
        probe_version=PROBE_VERSION,
    )
    if video:
        info.video_codec = video.get("codec_name")
        info.width = _num(video.get("width"), int)
        info.height = _num(video.get("height"), int)
        info.fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
        info.pix_fmt = video.get("pix_fmt")
        _read_colour(info, video, data.get("frames") or [])
    if audio:
        info.audio_codec = audio.get("codec_name")
        info.sample_rate = _num(audio.get("sample_rate"), int)
        info.channels = _num(audio.get("channels"), int)
        info.audio_streams = [audio_stream(i, s) for i, s in enumerate(audios[:MAX_AUDIO_STREAMS])]
    subtitles = [s for s in streams if s.get("codec_type") == "subtitle"]
    info.subtitle_streams = [subtitle_stream(i, s) for i, s in enumerate(subtitles[:MAX_SUBTITLE_STREAMS])]
    return info


def probe_result(
    returncode: int | None, stdout: bytes, stderr: bytes, url: str, name: str | None = None
) -> MediaInfo:
    """What an ffprobe of ``url`` that ran :func:`ffprobe_args` to its end found: its :class:`MediaInfo`,
    or a :class:`ProbeError` (it failed, printed no JSON, found no stream) that never holds the URL:
    ``name`` (the object's key) stands in its place, or the URL without its query string. Pure, so that
    every caller reads ffprobe the same way however it starts it (:func:`probe` here, the transcoder's
    ``ffmpeg.probe``)."""
    if returncode != 0:
        text = redact(stderr.decode("utf-8", "replace"), {url: name} if name else None)
        msg = text.strip().splitlines()
        raise ProbeError((msg[-1] if msg else f"ffprobe exited with {returncode}")[:500])
    try:
        data = json.loads(stdout or b"{}")
    except ValueError:
        raise ProbeError("ffprobe printed no JSON") from None
    if not data.get("streams"):
        raise ProbeError("no audio or video stream found")
    return parse_ffprobe(data)


async def probe(
    url: str,
    timeout: float = 60.0,
    protocols: str = NETWORK_PROTOCOLS,
    *,
    name: str | None = None,
    max_memory: int | None = None,
    nice: int = 0,
) -> MediaInfo:
    """Run ffprobe on ``url`` (no shell, stdin closed, killed after ``timeout``, see :func:`child_setup`).

    A :class:`ProbeError` never holds the URL: ``name`` (the object's key) stands in its place, or the
    URL without its query string when no name is given."""
    proc = await asyncio.create_subprocess_exec(
        *ffprobe_args(url, protocols),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=child_setup(max_memory, nice),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ProbeError(f"ffprobe timed out after {timeout:.0f}s") from None
    except asyncio.CancelledError:  # the caller stopped: so does ffprobe
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return probe_result(proc.returncode, out, err, url, name)
