"""Filter graphs built with values from outside the code: read back with FFmpeg's own two levels of
parsing (a Python transcription of libavutil's av_get_token, the graph parser and the filters' option
parser), every value comes back exactly and no value adds a filter or an option; a watermark's text
never enters the graph. And the commands that draw a watermark: its image is an input before any output
option, a chunk of a rung draws it exactly as the whole rung does."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import ChunkSpan, JobRequested, MediaInfo, Watermark
from mpr_common.jobs import normalize_job
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.ffmpeg.filtergraph import (
    VIDEO_OUT,
    WATERMARK_FONT,
    WatermarkSource,
    filter_spec,
    watermark_graph,
)
from mpr_transcoder.kinds.rendition.cmaf import chunk_rendition_args, rendition_args, video_filter
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.kinds.transcode.parts import video_chunk_args

WHITESPACES = " \n\t\r"


def get_token(s: str, i: int, term: str) -> tuple[str, int]:
    """libavutil's av_get_token: (the token, the index after it) of ``s`` from ``i`` up to a character
    of ``term``; a backslash escapes the next character, single quotes quote, and surrounding
    whitespace that is neither escaped nor quoted is dropped."""
    while i < len(s) and s[i] in WHITESPACES:
        i += 1
    out: list[str] = []
    end = 0
    while i < len(s) and s[i] not in term:
        c = s[i]
        i += 1
        if c == "\\" and i < len(s):
            out.append(s[i])
            i += 1
            end = len(out)
        elif c == "'":
            while i < len(s) and s[i] != "'":
                out.append(s[i])
                i += 1
            if i < len(s):
                i += 1
                end = len(out)
        else:
            out.append(c)
    while len(out) > end and out[-1] in WHITESPACES:
        out.pop()
    return "".join(out), i


def parse_options(args: str) -> dict[str, str]:
    """A filter's option string as its option parser splits it: key=value pairs separated by ':' (a
    value without a key is the filter's next positional option, named here by its place: ``#0``)."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        key, j = get_token(args, i, "=:")
        if j < len(args) and args[j] == "=":
            value, i = get_token(args, j + 1, ":")
        else:
            key, value, i = f"#{len(options)}", key, j
        options[key] = value
        if i < len(args):
            i += 1  # the ':'
    return options


def parse_graph(graph: str) -> list[tuple[list[str], str, dict[str, str], list[str]]]:
    """A filter graph as avfilter_graph_parse2 reads it: each filter's input labels, name, options
    and output labels, in order."""
    filters = []
    i = 0

    def labels() -> list[str]:
        nonlocal i
        found = []
        while i < len(graph) and graph[i] == "[":
            name, i = get_token(graph, i + 1, "]")
            assert i < len(graph) and graph[i] == "]"
            i += 1
            found.append(name)
        return found

    while i < len(graph):
        ins = labels()
        name, i = get_token(graph, i, "=,;[")
        options: dict[str, str] = {}
        if i < len(graph) and graph[i] == "=":
            args, i = get_token(graph, i + 1, "[],;")
            options = parse_options(args)
        outs = labels()
        filters.append((ins, name, options, outs))
        if i < len(graph):
            assert graph[i] in ",;", graph[i:]
            i += 1
    return filters


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80))
def test_any_value_comes_back_as_one_option_of_one_filter(value):
    graph = "[0:v:0]null," + filter_spec("drawtext", {"textfile": value, "x": "w-text_w-16"}) + ",null[out]"
    parsed = parse_graph(graph)
    assert [f[1] for f in parsed] == ["null", "drawtext", "null"]
    assert parsed[1][2] == {"textfile": value, "x": "w-text_w-16"}
    assert parsed[0][0] == ["0:v:0"] and parsed[2][3] == ["out"]


paths = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(paths, st.sampled_from(["top-left", "top-right", "bottom-left", "bottom-right", "center"]))
def test_a_text_watermark_graph_reads_the_text_file_and_holds_no_text(name, position):
    text_file = Path("/work dir") / name
    spec = Watermark(text="anything", position=position, margin=8, opacity=0.5, size=0.05)
    graph = watermark_graph(
        video_filter(PRESETS["abr-h264"].ladder[1]), WatermarkSource(spec, text_file=text_file)
    )
    parsed = parse_graph(graph)
    assert [f[1] for f in parsed] == ["scale", "setsar", "format", "drawtext", "format"]
    draw = parsed[3][2]
    assert draw["textfile"] == str(text_file) and draw["fontfile"] == WATERMARK_FONT
    assert draw["expansion"] == "none"  # %{...} in the text is drawn, never run
    assert set(draw) == {"fontfile", "textfile", "expansion", "fontsize", "fontcolor", "borderw",
                         "bordercolor", "x", "y"}  # fmt: skip
    assert parsed[-1][3] == [VIDEO_OUT]
    other = Watermark(text="other ' ; [x]", position=position, margin=8, opacity=0.5, size=0.05)
    assert watermark_graph("null", WatermarkSource(other, text_file=text_file)) == watermark_graph(
        "null", WatermarkSource(spec, text_file=text_file)
    )


def test_an_image_watermark_graph_scales_the_image_to_the_picture_and_overlays_it():
    spec = Watermark(key="logo.png", position="bottom-left", margin=12, opacity=0.25, width=0.2)
    parsed = parse_graph(watermark_graph("scale=-2:360", WatermarkSource(spec, image_url="http://s3/logo")))
    assert [(f[0], f[1], f[3]) for f in parsed] == [
        (["0:v:0"], "scale", ["mpr_base"]),
        (["1:v:0"], "format", []),
        ([], "colorchannelmixer", ["mpr_logo"]),
        (["mpr_logo", "mpr_base"], "scale2ref", ["mpr_mark", "mpr_main"]),
        (["mpr_main", "mpr_mark"], "overlay", []),
        ([], "format", [VIDEO_OUT]),
    ]
    assert parsed[2][2] == {"aa": "0.2500"}
    assert parsed[3][2]["w"] == "max(2,trunc(iw*0.2000/2)*2)"
    assert parsed[4][2] == {"x": "12", "y": "H-h-12"}


INFO = MediaInfo(video_codec="h264", audio_codec="aac", width=640, height=360, duration=8.0, fps=25.0)
IMAGE = WatermarkSource(Watermark(key="l.png", opacity=0.8, width=0.15), image_url="https://s3/l.png?sig")


def test_a_transcode_reads_the_image_as_an_input_before_any_output_option(tmp_path):
    job = normalize_job(JobRequested(job_id="t", kind="transcode", source_key="a.mp4", end=4.0,
                                     watermark={"key": "l.png"}))  # fmt: skip
    plan = build_plan(job, PRESETS["h264-720p"], "https://s3/a.mp4", INFO, tmp_path, 10**9, watermark=IMAGE)
    args = plan.args
    inputs = [i for i, a in enumerate(args) if a == "-i"]
    assert [args[i + 1] for i in inputs] == ["https://s3/a.mp4", "https://s3/l.png?sig"]
    assert args[inputs[1] - 6 : inputs[1]][:2] == ["-protocol_whitelist", "http,https,tcp,tls,crypto"]
    assert args[inputs[1] - 4 : inputs[1] - 2] == ["-format_whitelist", "png_pipe,jpeg_pipe"]
    assert args.index("-t") > inputs[1]  # -t bounds the output, not the image
    assert args[args.index("-map") + 1] == f"[{VIDEO_OUT}]" and "-vf" not in args
    assert (
        "-filter_complex" in args
        and ["-map", "0:a:0"] == args[args.index("0:a:0") - 1 : args.index("0:a:0") + 1]
    )


def test_every_chunk_of_a_rung_draws_the_watermark_as_the_whole_rung_does(tmp_path):
    preset = PRESETS["abr-h264"]
    rung = preset.ladder[-1]
    whole = rendition_args(["-i", "https://s3/a.mp4"], preset, rung, INFO, tmp_path, watermark=IMAGE)
    chunks = [
        chunk_rendition_args(
            ["-i", "https://s3/a.mp4"],
            preset,
            rung,
            INFO,
            tmp_path,
            ChunkSpan(index=i, start=4.0 * i, end=4.0 * i + 4, first_segment=i),
            watermark=IMAGE,
        )  # fmt: skip
        for i in range(2)
    ]
    graph = whole[whole.index("-filter_complex") + 1]
    for args in chunks:
        chunk_graph = args[args.index("-filter_complex") + 1]
        assert chunk_graph == graph.replace("[0:v:0]", "[0:v:0]setpts=PTS-STARTPTS,", 1)
        assert args[args.index("-map") + 1] == f"[{VIDEO_OUT}]"
    audio = rendition_args(["-i", "https://s3/a.mp4"], preset, None, INFO, tmp_path)
    assert "-filter_complex" not in audio


def test_every_chunk_of_a_transcode_draws_the_watermark_as_the_whole_transcode_does(tmp_path):
    job = normalize_job(JobRequested(job_id="t", kind="transcode", source_key="a.mp4", preset="h264-720p",
                                     watermark={"key": "l.png"}))  # fmt: skip
    whole = build_plan(job, PRESETS["h264-720p"], "https://s3/a.mp4", INFO, tmp_path, 1000,
                       watermark=IMAGE).args  # fmt: skip
    graph = whole[whole.index("-filter_complex") + 1]
    for start in (0.0, 12.0):
        source = input_args("https://s3/a.mp4", start, end=start + 12)
        args = video_chunk_args(source, PRESETS["h264-720p"], tmp_path / "chunk.mp4", 1000, IMAGE)
        inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
        assert inputs == ["https://s3/a.mp4", IMAGE.image_url]  # the image after the chunk's range
        assert args.index("-filter_complex") > args.index("-i", args.index("-i") + 1)
        assert args[args.index("-filter_complex") + 1] == graph.replace(
            "[0:v:0]", "[0:v:0]setpts=PTS-STARTPTS,", 1
        )
        assert args[args.index("-map") + 1] == f"[{VIDEO_OUT}]" and "-vf" not in args
