"""TRANSCODER_FFMPEG_THREADS: every decoder, encoder and filter graph of an FFmpeg command bounded, by
whole option pairs added where they cannot part an option from its value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpr_transcoder.ffmpeg.argv import bounded_threads, global_args, local_input
from mpr_transcoder.limits import Limits
from mpr_transcoder.settings import TranscoderSettings

VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:._/=", min_size=1, max_size=12)
OPTION = st.sampled_from(["-map", "-crf", "-preset", "-b:v", "-f", "-ss", "-to", "-vf", "-g", "-pix_fmt"])
CODEC = st.sampled_from(["-c:v", "-c:a", "-c", "-codec:v", "-vcodec", "-acodec", "-c:s"])
FLAG = st.sampled_from(["-y", "-nostdin", "-an", "-vn", "-shortest"])


@st.composite
def commands(draw) -> list[str]:
    """An FFmpeg command as the transcoder writes them: global flags, inputs with their options, then
    outputs, each its options (codec choices among them) and its path."""
    args = ["ffmpeg", *draw(st.lists(FLAG, max_size=3))]
    for _ in range(draw(st.integers(1, 3))):
        for opt, value in draw(st.lists(st.tuples(OPTION, VALUE), max_size=3)):
            args += [opt, value]
        args += ["-i", draw(VALUE)]
    for _ in range(draw(st.integers(1, 3))):
        for kind, opt, value in draw(
            st.lists(
                st.tuples(st.sampled_from(["option", "codec", "flag"]), OPTION | CODEC, VALUE), max_size=5
            )
        ):
            args += [opt, value] if kind != "flag" else [draw(FLAG)]
        args.append(draw(VALUE))
    return args


def pairs_removed(args: list[str], n: str) -> list[str]:
    """``args`` without the pairs :func:`bounded_threads` adds."""
    out, i = [], 0
    while i < len(args):
        if args[i] in ("-threads", "-filter_threads", "-filter_complex_threads") and args[i + 1] == n:
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


@given(commands(), st.integers(1, 64))
def test_the_command_is_kept_whole_and_every_input_and_codec_is_bounded(args, threads):
    n = str(threads)
    bounded = bounded_threads(args, threads)
    assert pairs_removed(bounded, n) == args  # nothing moved, parted or lost
    assert bounded[:5] == ["ffmpeg", "-filter_threads", n, "-filter_complex_threads", n]
    for i, token in enumerate(bounded):
        if token == "-i":
            assert bounded[i - 2 : i] == ["-threads", n]
        if token in ("-c:v", "-c:a", "-c", "-codec:v", "-vcodec", "-acodec", "-c:s"):
            assert bounded[i + 2 : i + 4] == ["-threads", n], bounded


@given(commands())
def test_zero_leaves_the_command_as_it_is(args):
    assert bounded_threads(args, 0) == args


def test_an_ffprobe_command_is_left_alone():
    probe = ["ffprobe", "-v", "error", "-i", "x.mp4"]
    assert bounded_threads(probe, 2) == probe


def test_a_real_command():
    args = [*global_args(), *local_input("in.mp4"), "-c:v", "libx264", "-crf", "20", "-c:a", "aac", "out.mp4"]
    bounded = bounded_threads(args, 1)
    assert bounded[bounded.index("-i") - 2 : bounded.index("-i")] == ["-threads", "1"]
    assert bounded[bounded.index("libx264") + 1 : bounded.index("libx264") + 3] == ["-threads", "1"]
    assert bounded[bounded.index("aac") + 1 : bounded.index("aac") + 3] == ["-threads", "1"]


def test_the_setting_is_the_jobs_limit_and_refuses_a_negative():
    assert Limits().ffmpeg_threads == TranscoderSettings().ffmpeg_threads == 0
    one = TranscoderSettings.from_env({"TRANSCODER_FFMPEG_THREADS": "1"})
    assert Limits.from_settings(one).ffmpeg_threads == 1
    with pytest.raises(ValueError, match="TRANSCODER_FFMPEG_THREADS"):
        TranscoderSettings.from_env({"TRANSCODER_FFMPEG_THREADS": "-1"})
