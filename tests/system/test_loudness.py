"""EBU R128 loudness normalisation: the first pass's argv and report, the second pass's filter, and real
FFmpeg runs on sound made with lavfi (quiet, loud, quiet with loud peaks): the measurement agrees with
ebur128's, and the normalised output measures -23 LUFS (within 1 LU) with its true peak at most -1 dBTP."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mpr_common.events import Loudness
from mpr_common.mediainfo import INPUT_FORMATS, probe
from mpr_common.presets import LOUDNORM_TARGET_I, LOUDNORM_TARGET_LRA, LOUDNORM_TARGET_TP
from mpr_transcoder.ffmpeg import run_ffmpeg
from mpr_transcoder.ffmpeg.argv import GLOBAL_ARGS, input_args
from mpr_transcoder.loudness import (
    EBU_R128,
    SILENCE_LUFS,
    LoudnessError,
    NoAudioStream,
    SilentAudio,
    loudnorm_filter,
    measure_args,
    measure_loudness,
    parse_measurement,
)
from tests.media import ffmpeg
from tests.media import probe as ffprobe

pytestmark = pytest.mark.system


async def run(args: list[str]) -> list[str]:
    return await run_ffmpeg(args, lambda r: None, timeout=120)


# --- the first pass's argv and report ------------------------------------------------------------


def test_measure_args_read_only_the_sound_through_the_whitelists():
    args = measure_args("https://s3.example/in/a.mp4?X-Amz-Signature=x")
    i = args.index("-i")
    assert args[i + 1] == "https://s3.example/in/a.mp4?X-Amz-Signature=x"
    assert args[args.index("-protocol_whitelist") + 1] == "http,https,tcp,tls,crypto"
    assert args[args.index("-format_whitelist") + 1] == INPUT_FORMATS
    assert args.index("-protocol_whitelist") < i and args.index("-format_whitelist") < i
    assert args[args.index("-map") + 1] == "0:a:0" and "-vn" in args
    assert args[args.index("-loglevel") + 1] == "info"  # loudnorm prints its report at this level
    assert args[args.index("-af") + 1] == "loudnorm=I=-23:TP=-1:LRA=7:print_format=json"
    assert args[-3:] == ["-f", "null", "-"] and "-progress" in args
    assert "-ss" not in args and "-t" not in args


def test_measure_args_of_a_range_and_another_target():
    args = measure_args("file.mp4", protocols="file", target=(-16.0, -1.5, 11.0), start=10.0, duration=5.0)
    assert args[args.index("-protocol_whitelist") + 1] == "file"
    assert args.index("-ss") < args.index("-i") and args.index("-t") < args.index("-i")
    assert args[args.index("-ss") + 1] == "10.000" and args[args.index("-t") + 1] == "5.000"
    assert args[args.index("-af") + 1] == "loudnorm=I=-16:TP=-1.5:LRA=11:print_format=json"


def test_default_target_is_ebu_r128():
    assert EBU_R128 == (LOUDNORM_TARGET_I, LOUDNORM_TARGET_TP, LOUDNORM_TARGET_LRA) == (-23.0, -1.0, 7.0)


def report(**values: str) -> list[str]:
    """stderr as FFmpeg prints it: log lines, then loudnorm's JSON."""
    fields = {
        "input_i": "-27.61",
        "input_tp": "-4.47",
        "input_lra": "18.06",
        "input_thresh": "-39.20",
        "output_i": "-23.05",
        "output_tp": "-1.00",
        "output_lra": "6.30",
        "output_thresh": "-34.27",
        "normalization_type": "dynamic",
        "target_offset": "0.05",
    }
    fields.update(values)
    body = ",\n".join(f'\t"{k}" : "{v}"' for k, v in fields.items())
    return [
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'a.mp4':",
        "{",  # someone else's braces before the report are not it
        "}",
        "[Parsed_loudnorm_0 @ 0x55d1c0e3f2c0] ",
        "{",
        *body.split("\n"),
        "}",
        "size=N/A time=00:01:00.00 bitrate=N/A speed= 120x",
    ]


def test_parse_measurement_reads_the_report():
    m = parse_measurement(report())
    assert m == Loudness(
        input_i=-27.61,
        input_tp=-4.47,
        input_lra=18.06,
        input_thresh=-39.2,
        target_offset=0.05,
        target_i=-23.0,
        target_tp=-1.0,
        target_lra=7.0,
    )
    assert parse_measurement(report(), (-16.0, -1.5, 11.0)).target_i == -16.0


@pytest.mark.parametrize("input_i", ["-inf", "-70.00", "-85.3", "nan"])
def test_silence_is_its_own_error_with_what_was_measured(input_i):
    with pytest.raises(SilentAudio, match="audio is silent: integrated loudness") as e:
        parse_measurement(report(input_i=input_i, input_tp="-inf", target_offset="inf"))
    assert isinstance(e.value, LoudnessError) and isinstance(e.value, ValueError)
    assert e.value.measured["input_i"] == input_i and e.value.measured["target_offset"] == "inf"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["Stream mapping:", "size=N/A"], "printed no measurement"),
        (report()[:-3], "printed no measurement"),  # cut short
        ([line for line in report() if "input_tp" not in line], "lacks input_tp"),
        (report(input_lra="lots"), "input_lra is not a number"),
        (report(input_tp="inf"), "no finite input_tp"),
    ],
)
def test_parse_measurement_says_what_is_wrong(lines, message):
    with pytest.raises(LoudnessError, match=message):
        parse_measurement(lines)


def test_loudnorm_filter_gives_the_measurement_back():
    m = parse_measurement(report())
    f = loudnorm_filter(m)
    assert f.startswith("loudnorm=I=-23:TP=-1:LRA=7:")
    for option in [
        "measured_I=-27.61",
        "measured_TP=-4.47",
        "measured_LRA=18.06",
        "measured_thresh=-39.20",
        "offset=0.05",
        "linear=true",
    ]:
        assert f":{option}" in f
    assert f.endswith(",aformat=sample_rates=48000")
    assert loudnorm_filter(m, sample_rate=44100).endswith("=44100")


# --- real sound -----------------------------------------------------------------------------------

# lavfi sources, 10 s stereo at 48 kHz, AAC in M4A as an upload would be
SOUNDS = {
    # a 1 kHz sine at -35 dBFS: linear gain up
    "quiet": "aevalsrc=0.0178*sin(2*PI*1000*t)|0.0178*sin(2*PI*1000*t+1):s=48000:d=10",
    # pink noise near full scale: linear gain down
    "loud": "anoisesrc=color=pink:amplitude=0.9:r=48000:d=10:seed=7,aformat=channel_layouts=stereo",
    # the quiet sine with 0.5 ms bursts near full scale every 2 s: a linear gain up would push the true
    # peak far above -1 dBTP, so loudnorm has to limit
    "peaks": (
        "aevalsrc=0.0178*sin(2*PI*1000*t)+0.95*lt(mod(t\\,2)\\,0.0005)*sin(2*PI*3000*t):s=48000:d=10,"
        "aformat=channel_layouts=stereo"
    ),
    # a 5 s quiet half, then a 5 s loud half
    "halves": "aevalsrc=if(lt(t\\,5)\\,0.0178\\,0.5)*sin(2*PI*1000*t):s=48000:d=10,aformat=channel_layouts=stereo",
}


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    made = {}
    for name, graph in SOUNDS.items():
        made[name] = folder / f"{name}.m4a"
        ffmpeg("-f", "lavfi", "-i", graph, "-c:a", "aac", "-b:a", "160k", str(made[name]))
    return made


def ebur128(path: Path, *extra: str) -> dict[str, float]:
    """Integrated loudness, loudness range and true peak by FFmpeg's ebur128 filter: a measurement
    independent of loudnorm's."""
    err = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", *extra, "-i", str(path), "-map", "0:a:0"]
        + ["-af", "ebur128=peak=true", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    summary = err[err.rindex("Summary:") :]

    def value(label: str) -> float:
        m = re.search(rf"{label}:\s+(\S+)", summary)
        assert m, summary
        return float(m.group(1))

    return {"I": value("I"), "LRA": value("LRA"), "TP": value("Peak")}


@pytest.mark.parametrize("name", ["quiet", "loud", "peaks"])
async def test_two_passes_bring_the_sound_to_ebu_r128(sounds, tmp_path, name):
    src = sounds[name]
    measured = await measure_loudness(str(src), run, protocols="file")
    source = ebur128(src)
    assert abs(measured.input_i - source["I"]) <= 0.5, (measured, source)
    assert abs(measured.input_tp - source["TP"]) <= 0.5, (measured, source)
    assert abs(measured.input_lra - source["LRA"]) <= 1.0, (measured, source)
    assert measured.input_thresh < measured.input_i
    assert (measured.target_i, measured.target_tp, measured.target_lra) == EBU_R128

    out = tmp_path / "normalised.m4a"
    await run(
        [*GLOBAL_ARGS, *input_args(str(src), protocols="file"), "-map", "0:a:0"]
        + ["-af", loudnorm_filter(measured), "-c:a", "aac", "-b:a", "160k", str(out)]
    )
    result = ebur128(out)
    assert abs(result["I"] - LOUDNORM_TARGET_I) <= 1.0, result
    assert result["TP"] <= LOUDNORM_TARGET_TP + 0.3, result  # AAC may overshoot a little
    stream = ffprobe(out)["streams"][0]
    assert stream["sample_rate"] == "48000" and stream["channels"] == 2  # not loudnorm's 192 kHz
    assert abs(float(stream["duration"]) - float(ffprobe(src)["streams"][0]["duration"])) < 0.1
    if name == "peaks":  # the limiter, not the gain, kept the peaks down: they were far above -1 dBTP
        assert measured.input_tp + (LOUDNORM_TARGET_I - measured.input_i) > LOUDNORM_TARGET_TP + 6


async def test_a_range_is_measured_alone(sounds):
    src = sounds["halves"]
    loud_half = await measure_loudness(str(src), run, protocols="file", start=5.0, duration=5.0)
    quiet_half = await measure_loudness(str(src), run, protocols="file", duration=5.0)
    assert abs(loud_half.input_i - ebur128(src, "-ss", "5")["I"]) <= 0.5
    assert abs(quiet_half.input_i - ebur128(src, "-t", "5")["I"]) <= 0.5
    assert loud_half.input_i - quiet_half.input_i > 20


async def test_silence_is_reported_not_normalised(tmp_path):
    src = tmp_path / "silence.m4a"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo:d=5", "-c:a", "aac", str(src))
    with pytest.raises(SilentAudio, match="integrated loudness -inf") as e:
        await measure_loudness(str(src), run, protocols="file")
    assert float(e.value.measured["input_i"]) <= SILENCE_LUFS


async def test_a_source_without_audio_fails_clearly(tmp_path):
    src = tmp_path / "video.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2", "-c:v", "libx264", str(src))
    info = await probe(str(src), protocols="file")
    with pytest.raises(NoAudioStream, match="the source has no audio stream"):
        await measure_loudness(str(src), run, protocols="file", info=info)  # known from the probe
    with pytest.raises(NoAudioStream, match="the source has no audio stream"):
        await measure_loudness(str(src), run, protocols="file")  # found by FFmpeg
