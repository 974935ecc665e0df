"""Whether the languages a job asks for are the source's: its ``audio_languages``, ``subtitle_languages``
and ``burn_subtitles`` checked against a probe of the source (and the subtitle files beside it), with
the very functions the transcoder plans the job with, so that the API refuses at once, naming the
language missing and those the source has, what the job would otherwise fail with later. Pure."""

from __future__ import annotations

from .audio_tracks import select_audio, source_audio
from .events import JobRequested, MediaInfo, SubtitleFile
from .subtitles import burn_track, select_subtitles


def check_source_languages(job: JobRequested, info: MediaInfo, sidecars: list[SubtitleFile] | None) -> None:
    """Raise :class:`~mpr_common.request_errors.JobRequestError` (naming the field) when ``job``
    (normalised) names a language that ``info`` and the subtitle files lack. ``sidecars``: the files
    beside the source (None: not known, and the subtitle languages are left to the job)."""
    if job.audio_languages is not None:
        select_audio(source_audio(info), job.audio_languages)
    if sidecars is None:
        return
    if job.subtitle_languages is not None:  # a package's tracks: the sidecars, then the files it names
        files = [*sidecars, *(job.subtitles or [])]
        select_subtitles(info.subtitle_streams, files, job.subtitle_languages)
    if job.burn_subtitles is not None:  # a transcode burns a stream in, else a sidecar
        burn_track(info.subtitle_streams, sidecars, job.burn_subtitles)
