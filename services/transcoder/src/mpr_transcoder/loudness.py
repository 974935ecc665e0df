"""EBU R128 loudness normalisation with FFmpeg's ``loudnorm`` in two passes.

The first pass (:func:`measure_args`) decodes the sound once and prints what it measured (integrated
loudness, true peak, loudness range, gating threshold) as JSON on stderr; :func:`parse_measurement` reads
it into a :class:`Loudness`. The second pass, the job's own encode, applies :func:`loudnorm_filter`: with
the measured values loudnorm can apply one linear gain (no pumping) whenever the target true peak and
loudness range allow it, and falls back to its dynamic mode otherwise.

Silence: a source whose integrated loudness is ``-inf`` (digital silence) or below BS.1770's absolute
gate of -70 LUFS has nothing to normalise: any gain would only raise noise. :func:`parse_measurement`
raises :class:`SilentAudio`, which carries what loudnorm printed; the job should then encode the sound
unchanged and report no ``loudness`` (a ``Loudness`` holds finite numbers only, and the output was not
normalised), rather than fail. A source without audio raises :class:`NoAudioStream`: normalisation was
asked of a job whose source cannot have it, a clear failure."""

from __future__ import annotations

import json
import math
from typing import Any

from mpr_common.events import Loudness, MediaInfo
from mpr_common.presets import LOUDNORM_TARGET_I, LOUDNORM_TARGET_LRA, LOUDNORM_TARGET_TP

from .ffmpeg import FfmpegError, Runner
from .ffmpeg.argv import NETWORK_PROTOCOLS, global_args, input_args

Target = tuple[float, float, float]  # integrated loudness (LUFS), true peak (dBTP), loudness range (LU)
EBU_R128: Target = (LOUDNORM_TARGET_I, LOUDNORM_TARGET_TP, LOUDNORM_TARGET_LRA)
# loudnorm works at 192 kHz (true-peak detection); its output is brought back to this rate unless told.
OUTPUT_RATE = 48000
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: nothing quieter counts as programme loudness

_MEASURED = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")


class LoudnessError(ValueError):
    pass


class NoAudioStream(LoudnessError):
    def __init__(self) -> None:
        super().__init__("the source has no audio stream to normalise")


class SilentAudio(LoudnessError):
    """The sound is silent: nothing to normalise. ``measured``: loudnorm's values as it printed them."""

    def __init__(self, measured: dict[str, str]) -> None:
        super().__init__(
            f"audio is silent: integrated loudness {measured.get('input_i')} LUFS "
            f"(at or below {SILENCE_LUFS:g} LUFS), nothing to normalise"
        )
        self.measured = measured


def _target_options(target: Target) -> str:
    i, tp, lra = target
    return f"I={i:g}:TP={tp:g}:LRA={lra:g}"


def measure_args(
    url: str,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    target: Target = EBU_R128,
    start: float | None = None,
    duration: float | None = None,
    stream: int = 0,
) -> list[str]:
    """The first pass over audio stream ``stream`` (counting audio streams only; from ``start``, for
    ``duration`` seconds: the part the job will encode), to a null output; loudnorm prints its
    measurement at the ``info`` log level."""
    args = global_args("info")
    source = input_args(url, start, protocols=protocols)
    if duration is not None:
        # An input option: loudnorm holds 3 s back, so an output -t would let it measure 3 s too many.
        source[-2:-2] = ["-t", f"{duration:.3f}"]
    return (
        args
        + source
        + [
            "-map",
            f"0:a:{stream:d}",
            "-vn",
            "-sn",
            "-dn",
            "-af",
            f"loudnorm={_target_options(target)}:print_format=json",
            "-f",
            "null",
            "-",
        ]
    )


def _last_json_block(lines: list[str]) -> dict[str, Any] | None:
    """The last ``{ … }`` block printed after loudnorm's log line."""
    end = None
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i].strip()
        if text == "}" and end is None:
            end = i
        elif text == "{" and end is not None:
            if i > 0 and "loudnorm" not in lines[i - 1]:
                end = None  # someone else's JSON
                continue
            try:
                data = json.loads("\n".join(lines[i : end + 1]))
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def parse_measurement(stderr_lines: list[str], target: Target = EBU_R128) -> Loudness:
    """loudnorm's first-pass report (``print_format=json``) from FFmpeg's stderr, as :class:`Loudness`
    with ``target``. Raises :class:`SilentAudio` for silence, :class:`LoudnessError` when there is no
    report or a value is missing or not a number."""
    data = _last_json_block(stderr_lines)
    if data is None:
        raise LoudnessError("loudnorm printed no measurement (no JSON report on stderr)")
    missing = [k for k in _MEASURED if k not in data]
    if missing:
        raise LoudnessError(f"loudnorm's measurement lacks {', '.join(missing)}")
    values: dict[str, float] = {}
    for key in _MEASURED:
        try:
            values[key] = float(data[key])
        except (TypeError, ValueError):
            raise LoudnessError(f"loudnorm's {key} is not a number: {data[key]!r}") from None
    if not values["input_i"] > SILENCE_LUFS:  # also -inf and nan
        raise SilentAudio({k: str(data[k]) for k in _MEASURED})
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise LoudnessError(f"loudnorm measured no finite {', '.join(bad)}")
    i, tp, lra = target
    return Loudness(**values, target_i=i, target_tp=tp, target_lra=lra)


def loudnorm_filter(measured: Loudness, *, sample_rate: int = OUTPUT_RATE) -> str:
    """The second pass: loudnorm told what the first pass measured (linear gain when it can), then
    resampled from loudnorm's 192 kHz to ``sample_rate`` (the output's: the preset's or the source's;
    the preset's ``-ar``, when it has one, must agree)."""
    target = _target_options((measured.target_i, measured.target_tp, measured.target_lra))
    return (
        f"loudnorm={target}"
        f":measured_I={measured.input_i:.2f}:measured_TP={measured.input_tp:.2f}"
        f":measured_LRA={measured.input_lra:.2f}:measured_thresh={measured.input_thresh:.2f}"
        f":offset={measured.target_offset:.2f}:linear=true:print_format=none"
        # Not "aresample=": after loudnorm, FFmpeg 5.1 cannot negotiate an explicit aresample's channel
        # layout ("Cannot select channel layout"); aformat has it insert the resampler itself.
        f",aformat=sample_rates={sample_rate}"
    )


async def measure_loudness(
    url: str,
    run: Runner,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    target: Target = EBU_R128,
    start: float | None = None,
    duration: float | None = None,
    info: MediaInfo | None = None,
    stream: int = 0,
) -> Loudness:
    """Run the first pass over audio stream ``stream`` and parse it. ``info`` (the probe) lets a source
    without audio fail at once."""
    if info is not None and info.audio_codec is None:
        raise NoAudioStream()
    args = measure_args(
        url, protocols=protocols, target=target, start=start, duration=duration, stream=stream
    )
    try:
        lines = await run(args)
    except FfmpegError as e:
        if "matches no streams" in e.tail:
            raise NoAudioStream() from None
        raise
    return parse_measurement(lines, target)
