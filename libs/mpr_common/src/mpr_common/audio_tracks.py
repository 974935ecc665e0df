"""A package's audio tracks: every audio stream of the source (or those of the languages a request names,
in its order) becomes an AAC rendition of its own, named for the package's files and child jobs.

Language and title come from the stream's tags, which are whatever the file's author wrote: a language is
kept only as a well-formed BCP 47 tag (:func:`language_tag`), a title only as text without control
characters or line breaks (:func:`display_text`). Pure functions, shared by the catalog (what an asset's
metadata lists), the API and the transcoders (a request's errors, a package's plan)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, NamedTuple

import msgspec

from .events import AudioStream, MediaInfo
from .languages import ISO_639_1
from .presets import AUDIO_RENDITION
from .request_errors import JobRequestError

MAX_AUDIO_STREAMS = 32  # audio streams a MediaInfo lists (the rest of a source's are not offered)
MAX_AUDIO_TRACKS = 16  # audio renditions a package makes
MAX_TITLE_CHARS = 120
MAX_LANGUAGE_CHARS = 35  # a BCP 47 tag of a language and three subtags
# A request's audio_languages, as the API and templates bound it (its values: check_audio_languages)
AudioLanguages = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=2, max_length=MAX_LANGUAGE_CHARS)]],
    msgspec.Meta(min_length=1, max_length=MAX_AUDIO_TRACKS),
]
# The longest audio rendition name (:func:`select_audio`): the package's id leaves room for it.
LONGEST_AUDIO_NAME = f"{AUDIO_RENDITION}-xxx-{MAX_AUDIO_STREAMS - 1}"

# A language subtag of 2-3 letters (ISO 639-1 or -2), then up to three script, region or variant subtags.
_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8}){0,3}")
# ISO 639-2's codes for no particular language: undetermined, multiple, uncoded, none, reserved
_NO_LANGUAGE = frozenset({"und", "mul", "mis", "zxx", "qaa"})
_AUDIO_NAME = re.compile(re.escape(AUDIO_RENDITION) + r"(?:-[a-z]{2,3})?(?:-[0-9]{1,3})?")
# Characters a menu or a manifest must never hold: controls (line breaks among them), line and paragraph
# separators, lone surrogates and noncharacters (not valid in XML, nor encodable in UTF-8).
_DROPPED = frozenset({"Cc", "Cs", "Cn", "Zl", "Zp"})


def language_tag(value: Any) -> str | None:
    """A stream's or a request's language as a lower-case BCP 47 tag, its language subtag in ISO 639-1
    where it has one (``eng``, ``ENG`` and ``en`` are ``en``; ``fre`` and ``fra`` are ``fr``; ``pt_BR`` is
    ``pt-br``); None for anything else, and for "undetermined" and the like (``und``, ``mul``)."""
    if not isinstance(value, str):
        return None
    tag = value.strip().lower().replace("_", "-")
    if not _TAG.fullmatch(tag):
        return None
    primary, dash, rest = tag.partition("-")
    primary = ISO_639_1.get(primary, primary)
    if primary in _NO_LANGUAGE:
        return None
    return primary + dash + rest


def display_text(value: Any, limit: int = MAX_TITLE_CHARS) -> str | None:
    """A tag's text fit for a player's menu and for any manifest: each control character, line or
    paragraph separator, lone surrogate and noncharacter becomes a space, runs of white space one space,
    at most ``limit`` characters; None when nothing is left."""
    if not isinstance(value, str):
        return None
    kept = "".join(" " if unicodedata.category(c) in _DROPPED else c for c in value)
    text = " ".join(kept.split())[:limit].strip()
    return text or None


def audio_stream(index: int, stream: dict[str, Any]) -> AudioStream:
    """An audio stream of ffprobe's JSON (``-show_streams``), the ``index``-th of the source's."""
    tags = stream.get("tags") or {}
    if not isinstance(tags, dict):
        tags = {}
    tags = {str(k).lower(): v for k, v in tags.items()}
    channels = stream.get("channels")
    return AudioStream(
        index=index,
        codec=display_text(stream.get("codec_name"), 32),
        channels=channels if isinstance(channels, int) and channels > 0 else None,
        language=language_tag(tags.get("language")),
        title=display_text(tags.get("title")),
    )


def source_audio(info: MediaInfo) -> list[AudioStream]:
    """The source's audio streams; a probe that did not list them (made before they were) has its first
    audio stream, when it has one."""
    if info.audio_streams:
        return list(info.audio_streams)
    if info.audio_codec is None:
        return []
    return [AudioStream(index=0, codec=info.audio_codec, channels=info.channels)]


def track_label(stream: AudioStream) -> str:
    """What a player shows for the track: its title, else its language, else "Audio <n>" (from 1)."""
    return stream.title or stream.language or f"Audio {stream.index + 1}"


def is_audio_rendition(name: str | None) -> bool:
    """Whether ``name`` is one :func:`select_audio` gives an audio rendition."""
    return name is not None and _AUDIO_NAME.fullmatch(name) is not None


def check_languages(values: list[str] | None, field: str, limit: int) -> list[str] | None:
    """A request's list of languages (``field``), each as :func:`language_tag` makes it; raises
    :class:`JobRequestError` naming the field for an empty or too long list, a value that is no
    language, a language named twice."""
    if values is None:
        return None
    if not values or len(values) > limit:
        raise JobRequestError(f"{field} lists 1 to {limit} languages", field=field)
    tags: list[str] = []
    for value in values:
        tag = language_tag(value)
        if tag is None:
            raise JobRequestError(
                f"{field}: {str(value)[:40]!r} is not a language (e.g. 'en', 'fra', 'pt-BR')",
                field=field,
            )
        if tag in tags:
            raise JobRequestError(f"{field} names {tag!r} twice", field=field)
        tags.append(tag)
    return tags


def check_audio_languages(values: list[str] | None) -> list[str] | None:
    """A request's ``audio_languages``: :func:`check_languages`."""
    return check_languages(values, "audio_languages", MAX_AUDIO_TRACKS)


class AudioTrack(NamedTuple):
    name: str  # the rendition's name: its files' stem, its child job's suffix
    stream: AudioStream


def speaks(tagged: str | None, language: str) -> bool:
    """Whether a stream tagged ``tagged`` is in ``language`` (``en`` takes ``en-gb`` too; ``en-gb`` only
    itself)."""
    return tagged is not None and (tagged == language or tagged.startswith(language + "-"))


def select_audio(streams: list[AudioStream], languages: list[str] | None) -> list[AudioTrack]:
    """The audio renditions of a package of a source with ``streams``: every stream (at most
    :data:`MAX_AUDIO_TRACKS`) or, for ``languages`` (:func:`check_audio_languages`' output), every
    stream of each in their order. The first is the default track, named :data:`AUDIO_RENDITION`; the
    others ``audio-<language>`` (the language subtag), ``audio-<language>-<n>`` for a language's second
    stream, ``audio-<n>`` without a language, ``n`` the stream's index among the source's audio streams.

    Raises :class:`JobRequestError` when the source has no stream in a language named."""
    if languages is None:
        chosen = streams
    else:
        chosen = []
        missing: list[str] = []
        for language in languages:
            found = [s for s in streams if speaks(s.language, language) and s not in chosen]
            if not found:
                missing.append(language)
            chosen += found
        if missing:
            have = sorted({s.language for s in streams if s.language})
            raise JobRequestError(
                f"audio_languages: the source has no audio stream in {', '.join(missing)} "
                f"(its audio streams' languages: {', '.join(have) or 'none tagged'})",
                field="audio_languages",
            )
    tracks: list[AudioTrack] = []
    for position, stream in enumerate(chosen[:MAX_AUDIO_TRACKS]):
        if position == 0:
            name = AUDIO_RENDITION
        else:
            suffix = stream.language.split("-", 1)[0] if stream.language else str(stream.index)
            name = f"{AUDIO_RENDITION}-{suffix}"
            if any(t.name == name for t in tracks):
                name = f"{name}-{stream.index}"
        tracks.append(AudioTrack(name, stream))
    return tracks
