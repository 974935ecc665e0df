"""A package's subtitle tracks and a transcode's burnt-in subtitles: what a source offers (its subtitle
streams, sidecar files beside it, files a request names), what a request may ask for, and how each track
is named for the package's files and child jobs.

A subtitle stream's language and title are the file author's text, made safe as an audio stream's are
(:func:`~mpr_common.audio_tracks.language_tag`, :func:`~mpr_common.audio_tracks.display_text`). A sidecar
is an object of the source's bucket named ``<source stem>.<language>.srt`` (or ``.vtt``) in the source's
folder: ``talk.mp4`` has ``talk.en.srt`` and ``talk.fr.vtt``. Only text subtitles become WebVTT: bitmap
ones (PGS, DVD, DVB) are skipped, or refused when a request names their language. Pure functions, shared
by the catalog, the API and the transcoders."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, NamedTuple

import msgspec

from .audio_tracks import MAX_LANGUAGE_CHARS, check_languages, display_text, language_tag, speaks
from .events import SubtitleFile, SubtitleStream, SubtitleTrack
from .keys import InvalidKeyError, validate_key
from .request_errors import JobRequestError
from .s3_client import S3Client

MAX_SUBTITLE_STREAMS = 32  # subtitle streams a MediaInfo lists
MAX_SUBTITLE_FILES = 16  # sidecars taken from beside a source, and files a request names (each)
MAX_SUBTITLE_TRACKS = 16  # subtitle tracks a package makes
MAX_SUBTITLE_BYTES = 8 * 1024 * 1024  # a subtitle file read from the source bucket
SUBTITLE_RENDITION = "subs"
SUBTITLE_EXTENSIONS = ("srt", "vtt")
# The demuxers a subtitle file is read with (never guessed from its content)
SUBTITLE_FORMATS = "srt,webvtt"
# Codecs FFmpeg decodes to text (what WebVTT and libass can take); the others are pictures.
TEXT_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
# The longest subtitle rendition name (:func:`select_subtitles`): the package's id leaves room for it.
LONGEST_SUBTITLE_NAME = f"{SUBTITLE_RENDITION}-xxx-{MAX_SUBTITLE_STREAMS + 2 * MAX_SUBTITLE_FILES - 1}"

Language = Annotated[str, msgspec.Meta(min_length=2, max_length=MAX_LANGUAGE_CHARS)]
# A request's subtitle_languages, as the API and templates bound it (its values: check_subtitle_languages)
SubtitleLanguages = Annotated[list[Language], msgspec.Meta(min_length=1, max_length=MAX_SUBTITLE_TRACKS)]
# A request's subtitles, as the API bounds it (its values: check_subtitle_files)
SubtitleFiles = Annotated[list[SubtitleFile], msgspec.Meta(min_length=1, max_length=MAX_SUBTITLE_FILES)]

_NAME = re.compile(re.escape(SUBTITLE_RENDITION) + r"-(?:[a-z]{2,3}(?:-[0-9]{1,3})?|[0-9]{1,3})")


def subtitle_stream(index: int, stream: dict[str, Any]) -> SubtitleStream:
    """A subtitle stream of ffprobe's JSON (``-show_streams``), the ``index``-th of the source's."""
    tags = stream.get("tags") or {}
    if not isinstance(tags, dict):
        tags = {}
    tags = {str(k).lower(): v for k, v in tags.items()}
    disposition = stream.get("disposition") or {}
    if not isinstance(disposition, dict):
        disposition = {}
    return SubtitleStream(
        index=index,
        codec=display_text(stream.get("codec_name"), 32),
        language=language_tag(tags.get("language")),
        title=display_text(tags.get("title")),
        default=disposition.get("default") == 1,
        forced=disposition.get("forced") == 1,
    )


def is_text(stream: SubtitleStream) -> bool:
    """Whether the stream can become WebVTT (text, not pictures)."""
    return stream.codec in TEXT_CODECS


# --- sidecars ---------------------------------------------------------------------------------------


def sidecar_prefix(source_key: str) -> str:
    """The key prefix every sidecar of ``source_key`` starts with: its folder and stem, then a dot."""
    folder, name = posixpath.split(source_key)
    stem = name.rsplit(".", 1)[0]
    return posixpath.join(folder, stem) + "."


def sidecar_language(source_key: str, key: str) -> str | None:
    """The language of the sidecar ``key`` of ``source_key`` (``talk.en.srt`` of ``talk.mp4``: ``en``);
    None when ``key`` is not one (another folder, another stem, no language, not .srt or .vtt)."""
    prefix = sidecar_prefix(source_key)
    if not key.startswith(prefix):
        return None
    language, dot, ext = key[len(prefix) :].rpartition(".")
    if not dot or ext.lower() not in SUBTITLE_EXTENSIONS or "/" in language:
        return None
    return language_tag(language)


def sidecars(source_key: str, keys: list[str]) -> list[SubtitleFile]:
    """The sidecars of ``source_key`` among ``keys`` (a listing of its folder), by key, at most
    :data:`MAX_SUBTITLE_FILES`."""
    found = [
        SubtitleFile(key=k, language=lang) for k in sorted(keys) if (lang := sidecar_language(source_key, k))
    ]
    return found[:MAX_SUBTITLE_FILES]


SIDECAR_LISTING = 1000  # keys read from a source's folder (those starting with its stem) for its sidecars


def list_sidecars(s3: S3Client, bucket: str, source_key: str) -> list[SubtitleFile]:
    """The sidecars of ``source_key`` in ``bucket``, listed now (blocking: run it in a thread). S3's
    errors are the caller's to map."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=sidecar_prefix(source_key), PaginationConfig={"MaxItems": SIDECAR_LISTING}
    )
    return sidecars(source_key, [o["Key"] for page in pages for o in page.get("Contents", [])])


# --- a request's options ------------------------------------------------------------------------------


def check_subtitle_languages(values: list[str] | None) -> list[str] | None:
    """A request's ``subtitle_languages`` (see :func:`~mpr_common.audio_tracks.check_languages`)."""
    return check_languages(values, "subtitle_languages", MAX_SUBTITLE_TRACKS)


def check_subtitle_files(files: list[SubtitleFile] | None) -> list[SubtitleFile] | None:
    """A request's ``subtitles``: each a valid key ending in .srt or .vtt, named once, with a language
    (:func:`language_tag`'s, made the same way); raises :class:`JobRequestError` naming the field."""
    if files is None:
        return None
    field = "subtitles"
    if not files or len(files) > MAX_SUBTITLE_FILES:
        raise JobRequestError(f"subtitles lists 1 to {MAX_SUBTITLE_FILES} files", field=field)
    checked: list[SubtitleFile] = []
    for f in files:
        try:
            validate_key(f.key)
        except InvalidKeyError as exc:
            raise JobRequestError(f"subtitles: {exc}", field=field) from None
        if f.key.rsplit(".", 1)[-1].lower() not in SUBTITLE_EXTENSIONS:
            raise JobRequestError(f"subtitles: {f.key[:80]!r} is not a .srt or .vtt file", field=field)
        language = language_tag(f.language)
        if language is None:
            raise JobRequestError(
                f"subtitles: the language of {f.key[:80]!r} is missing or is not a language", field=field
            )
        if any(c.key == f.key for c in checked):
            raise JobRequestError(f"subtitles names {f.key[:80]!r} twice", field=field)
        checked.append(SubtitleFile(key=f.key, language=language))
    return checked


def check_burn_subtitles(value: str | None) -> str | None:
    """A request's ``burn_subtitles``: a language, as :func:`language_tag` makes it."""
    if value is None:
        return None
    tag = language_tag(value)
    if tag is None:
        raise JobRequestError(
            f"burn_subtitles: {str(value)[:40]!r} is not a language (e.g. 'en', 'fra')",
            field="burn_subtitles",
        )
    return tag


# --- tracks -------------------------------------------------------------------------------------------


class SubtitleRendition(NamedTuple):
    name: str  # the rendition's name: its files' stem, its child job's suffix
    track: SubtitleTrack


def is_subtitle_rendition(name: str | None) -> bool:
    """Whether ``name`` is one :func:`select_subtitles` gives a subtitle rendition."""
    return name is not None and _NAME.fullmatch(name) is not None


def _candidates(
    streams: list[SubtitleStream], files: list[SubtitleFile]
) -> list[tuple[SubtitleTrack, SubtitleStream | None]]:
    """Every track the source offers, in order (its streams, then the files), each with its stream."""
    out: list[tuple[SubtitleTrack, SubtitleStream | None]] = []
    for s in streams:
        label = s.title or s.language
        track = SubtitleTrack(
            stream=s.index, language=s.language, label=label, default=s.default, forced=s.forced
        )
        out.append((track, s))
    for f in files:
        out.append((SubtitleTrack(key=f.key, language=f.language, label=f.language), None))
    return out


def _languages(candidates: list[tuple[SubtitleTrack, SubtitleStream | None]]) -> str:
    return ", ".join(sorted({t.language for t, _ in candidates if t.language})) or "none tagged"


def select_subtitles(
    streams: list[SubtitleStream], files: list[SubtitleFile], languages: list[str] | None
) -> tuple[list[SubtitleRendition], list[str]]:
    """The subtitle renditions of a package (and notes on what was left out): every text track of the
    source's ``streams`` and the ``files`` (sidecars, then the request's), in that order, or for
    ``languages`` (:func:`check_subtitle_languages`' output) every text track of each, in their order.
    Bitmap streams are skipped (a note says so); a language named whose tracks are all bitmaps, or that
    no track has, raises :class:`JobRequestError`. Names: ``subs-<language>`` (the language subtag),
    ``subs-<language>-<n>`` for a language's second track, ``subs-<n>`` without a language, ``n`` the
    track's position among the source's. At most one track is the default: the first whose stream is
    marked so."""
    candidates = _candidates(streams, files)
    notes = [
        f"subtitle stream {s.index} ({s.codec or 'unknown codec'}) is not text: it cannot become WebVTT"
        for _, s in candidates
        if s is not None and not is_text(s)
    ]
    usable = [(n, t) for n, (t, s) in enumerate(candidates) if s is None or is_text(s)]
    if languages is None:
        chosen = usable
    else:
        chosen = []
        missing: list[str] = []
        for language in languages:
            found = [(n, t) for n, t in usable if speaks(t.language, language) and (n, t) not in chosen]
            if not found:
                bitmaps = [s for t, s in candidates if s is not None and speaks(t.language, language)]
                if bitmaps:
                    raise JobRequestError(
                        f"subtitle_languages: the source's subtitles in {language} are pictures "
                        f"({bitmaps[0].codec}), which cannot become WebVTT",
                        field="subtitle_languages",
                    )
                missing.append(language)
            chosen += found
        if missing:
            raise JobRequestError(
                f"subtitle_languages: the source has no subtitles in {', '.join(missing)} "
                f"(its subtitles' languages: {_languages(candidates)})",
                field="subtitle_languages",
            )
    out: list[SubtitleRendition] = []
    has_default = False
    for n, track in chosen[:MAX_SUBTITLE_TRACKS]:
        suffix = track.language.split("-", 1)[0] if track.language else str(n)
        name = f"{SUBTITLE_RENDITION}-{suffix}"
        if any(r.name == name for r in out):
            name = f"{name}-{n}"
        default = track.default and not has_default
        has_default = has_default or default
        out.append(SubtitleRendition(name, msgspec.structs.replace(track, default=default)))
    return out, notes


def burn_track(streams: list[SubtitleStream], files: list[SubtitleFile], language: str) -> SubtitleTrack:
    """The track a transcode burns in for ``language``: the source's first text stream in it, else the
    first file (sidecar) in it; raises :class:`JobRequestError` when there is none."""
    candidates = _candidates(streams, files)
    for track, stream in candidates:
        if speaks(track.language, language) and (stream is None or is_text(stream)):
            return track
    if any(s is not None and speaks(t.language, language) for t, s in candidates):
        raise JobRequestError(
            f"burn_subtitles: the source's subtitles in {language} are pictures, which are not burnt in",
            field="burn_subtitles",
        )
    raise JobRequestError(
        f"burn_subtitles: the source has no subtitles in {language} "
        f"(its subtitles' languages: {_languages(candidates)})",
        field="burn_subtitles",
    )


# --- file names ----------------------------------------------------------------------------------------


def subtitle_segment_pattern(name: str) -> str:
    """printf pattern of a subtitle track's WebVTT segments (numbered from 0)."""
    return f"{name}_%05d.vtt"


def subtitle_text_file(name: str) -> str:
    """The whole track in one WebVTT file (what the DASH manifest lists)."""
    return f"{name}.vtt"
