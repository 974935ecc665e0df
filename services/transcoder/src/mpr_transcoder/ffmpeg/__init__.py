"""FFmpeg and ffprobe for the transcoder: the only package that starts them, and the one that writes what
their command lines share.

- :mod:`.argv`: the global arguments, the inputs with their protocol and demuxer whitelists, the output
  bounds (each defined once; the job kinds compose their commands from them);
- :mod:`.process`: the one place a process is started (exec, no shell, limits, parent-death signal);
- :mod:`.runner`: one FFmpeg run with ``-progress`` reports, time, stall, memory and frame-gap limits,
  and redacted stderr; :mod:`.probe`: ffprobe of a source;
- :mod:`.progress`, :mod:`.errors`: what a run reports and how it fails."""

from .errors import (
    FfmpegCancelled,
    FfmpegError,
    FfmpegKilled,
    FfmpegOutOfMemory,
    FfmpegSourceGap,
    FfmpegStalled,
    FfmpegTimeout,
)
from .probe import probe
from .progress import ProgressReport
from .runner import Runner, run_ffmpeg, written_duration

__all__ = [
    "FfmpegCancelled",
    "FfmpegError",
    "FfmpegKilled",
    "FfmpegOutOfMemory",
    "FfmpegSourceGap",
    "FfmpegStalled",
    "FfmpegTimeout",
    "ProgressReport",
    "Runner",
    "probe",
    "run_ffmpeg",
    "written_duration",
]
