"""Package plans: which children a source gets (a rendition per rung and per audio track), their ids,
files and weights; a child is run only as its package planned it."""

from __future__ import annotations

import msgspec
import pytest

from mpr_common.events import AudioStream, ChunkSpan, JobRequested, MediaInfo
from mpr_common.jobs import MAX_JOB_ID, MAX_PACKAGE_ID, JobRequestError, normalize_job
from mpr_common.presets import PRESETS
from mpr_transcoder.kinds.package.children import as_planned, plan_package
from mpr_transcoder.kinds.package.releasing import lead, with_shares
from mpr_transcoder.kinds.rendition.cmaf import rendition_args
from mpr_transcoder.loudness import measure_args

HD = MediaInfo(duration=60.0, video_codec="h264", width=1920, height=1080, audio_codec="aac")


def package(**kw) -> JobRequested:
    return normalize_job(JobRequested(job_id="p1", kind="package", source_key="shows/ep1.mp4", **kw))


def test_a_1080p_source_gets_every_rung_and_one_audio_rendition():
    plan = plan_package(package(chunk_seconds=0), HD)  # unchunked: one child per rung
    names = [c.rendition for c in plan.children]
    assert names == ["1080p", "720p", "480p", "360p", "audio"]
    assert [c.job_id for c in plan.children] == [f"p1-{n}" for n in names]
    assert {c.output_key for c in plan.children} == {f"shows/ep1/p1/{n}.m3u8" for n in names}
    assert all(
        c.parent_id == "p1" and c.kind == "rendition" and c.preset == "abr-h264" for c in plan.children
    )
    assert plan.folder == "shows/ep1/p1"
    # every child is a valid job of its own, and its id fits
    for c in plan.children:
        assert normalize_job(c) == c and len(c.job_id) <= MAX_JOB_ID
    # shares of the work: the biggest rung weighs most, sound little
    weights = {c.rendition: c.weight for c in plan.children}
    assert weights["1080p"] > weights["720p"] > weights["480p"] > weights["360p"] > weights["audio"]


def test_rungs_above_the_source_are_left_out_and_a_tiny_source_keeps_the_lowest():
    sd = msgspec.structs.replace(HD, width=854, height=480)
    assert [c.rendition for c in plan_package(package(chunk_seconds=0), sd).jobs] == ["480p", "360p", "audio"]
    tiny = msgspec.structs.replace(HD, width=320, height=180, audio_codec=None)
    assert [c.rendition for c in plan_package(package(chunk_seconds=0), tiny).jobs] == ["360p"]
    assert {c.rendition for c in plan_package(package(), tiny).jobs} == {"360p"}


def test_options_reach_the_children_that_take_them():
    plan = plan_package(package(loudnorm=True, storyboard=True, preset="abr-h264-hevc"), HD)
    by_name = {c.rendition or c.kind: c for c in plan.jobs}
    assert by_name["audio"].loudnorm and not by_name["1080p"].loudnorm
    assert by_name["storyboard"].kind == "storyboard" and by_name["storyboard"].output_key.endswith(
        "storyboard.vtt"
    )
    assert {"hevc-1080p", "hevc-720p"} <= set(by_name)


def test_a_source_without_video_cannot_make_a_package():
    with pytest.raises(JobRequestError, match="video stream"):
        plan_package(package(), MediaInfo(duration=10.0, audio_codec="aac"))


def test_a_child_runs_only_as_planned():
    plan = plan_package(package(chunk_seconds=0), HD)
    real = plan.children[1]
    assert as_planned(real, plan) == real
    # as published by the planner, or with only its id: the plan's version runs
    assert as_planned(JobRequested(job_id=real.job_id, kind="rendition", source_key="x.mp4"), plan) == real
    with pytest.raises(JobRequestError, match="not a child"):
        as_planned(msgspec.structs.replace(real, job_id="p1-4k"), plan)
    with pytest.raises(JobRequestError, match="differs"):
        as_planned(msgspec.structs.replace(real, output_key="elsewhere/720p.m3u8"), plan)
    # the children's de-duplication ids carry the plan's secret nonce
    assert plan.msg_id(real).startswith(real.job_id + ".") and len(plan.nonce) == 32


def test_a_long_source_is_encoded_in_chunks_every_rung_cut_at_the_same_times():
    plan = plan_package(package(storyboard=True), HD)  # 60 s, chunks of DEFAULT_CHUNK_SECONDS
    assert plan.spans and plan.spans[0].start == 0.0 and plan.spans[-1].end is None
    jobs = plan.jobs
    # the sound first (nothing plays without it), then chunk by chunk, the storyboard last
    assert jobs[0].rendition == "audio" and jobs[0].chunk is None and jobs[-1].kind == "storyboard"
    chunks = jobs[1:-1]
    assert [c.chunk.index for c in chunks] == sorted(c.chunk.index for c in chunks)
    assert len(chunks) == 4 * len(plan.spans)
    for name in ("1080p", "720p", "480p", "360p"):
        mine = plan.chunks_of(name)
        assert [c.chunk for c in mine] == plan.spans
        assert [c.job_id for c in mine] == [f"p1-{name}-c{i:04d}" for i in range(len(plan.spans))]
        assert [c.output_key for c in mine] == [
            f"shows/ep1/p1/{name}.c{i:04d}.m3u8" for i in range(len(mine))
        ]
        # the chunks' shares of the work add up to their rung's
        assert sum(c.weight for c in mine) == pytest.approx(
            {"1080p": 9.0, "720p": 4.0, "480p": 1.8, "360p": 1.0}[name], rel=1e-4
        )
    for c in jobs:
        assert normalize_job(c) == c and len(c.job_id) <= MAX_JOB_ID
    # a chunk runs only as planned: another span is refused
    real = plan.chunks_of("720p")[1]
    assert as_planned(real, plan) == real
    with pytest.raises(JobRequestError, match="differs"):
        as_planned(msgspec.structs.replace(real, chunk=ChunkSpan(index=1, start=0.0, end=8.0)), plan)


def test_the_longest_package_id_leaves_room_for_its_last_chunk():
    long_id = "p" * MAX_PACKAGE_ID
    job = normalize_job(JobRequested(job_id=long_id, kind="package", source_key="shows/ep1.mp4"))
    plan = plan_package(job, msgspec.structs.replace(HD, duration=20 * 3600.0))
    assert max(len(c.job_id) for c in plan.jobs) <= MAX_JOB_ID


def test_chunking_off_or_a_short_source_runs_each_rung_whole():
    assert not plan_package(package(chunk_seconds=0), HD).spans
    short = msgspec.structs.replace(HD, duration=3.0)
    assert not plan_package(package(), short).spans
    assert not plan_package(package(), msgspec.structs.replace(HD, duration=None)).spans


BILINGUAL = msgspec.structs.replace(
    HD,
    channels=2,
    audio_streams=[
        AudioStream(index=0, codec="aac", channels=2, language="en"),
        AudioStream(index=1, codec="aac", channels=2, language="fr", title="Français"),
        AudioStream(index=2, codec="aac", channels=6, language="fr", title="Commentaire"),
    ],
)


def test_every_audio_stream_becomes_a_rendition_child_of_its_own():
    plan = plan_package(package(chunk_seconds=0, loudnorm=True), BILINGUAL)
    audios = [c for c in plan.children if c.audio_stream is not None]
    assert [c.rendition for c in audios] == ["audio", "audio-fr", "audio-fr-2"]
    assert [c.job_id for c in audios] == ["p1-audio", "p1-audio-fr", "p1-audio-fr-2"]
    assert [c.output_key for c in audios] == [f"shows/ep1/p1/{c.rendition}.m3u8" for c in audios]
    assert [c.audio_stream.index for c in audios] == [0, 1, 2]
    assert audios[1].audio_stream.title == "Français"
    # each track normalised on its own; no picture, so no watermark
    assert all(c.loudnorm and c.watermark is None for c in audios)
    assert not any(c.loudnorm or c.audio_stream for c in plan.children if c not in audios)
    for c in plan.jobs:
        assert normalize_job(c) == c and as_planned(c, plan) == c


def test_audio_languages_pick_and_order_the_tracks_and_a_missing_one_fails_the_package():
    plan = plan_package(package(chunk_seconds=0, audio_languages=["fra"]), BILINGUAL)
    audios = [(c.rendition, c.audio_stream.index) for c in plan.children if c.audio_stream]
    assert audios == [("audio", 1), ("audio-fr", 2)]
    with pytest.raises(JobRequestError, match="no audio stream in de") as e:
        plan_package(package(audio_languages=["fr", "de"]), BILINGUAL)
    assert e.value.field == "audio_languages"


def test_a_chunked_package_releases_every_audio_track_before_it_can_play():
    plan = plan_package(package(), BILINGUAL)  # 60 s: chunked
    jobs = plan.jobs
    assert [c.rendition for c in jobs[:3]] == ["audio", "audio-fr", "audio-fr-2"]
    first = lead(plan)
    assert {c.rendition for c in jobs[:first] if c.chunk is None} == {"audio", "audio-fr", "audio-fr-2"}
    assert all(c.chunk is None or c.chunk.index == 0 for c in jobs[:first])
    assert sum(c.weight for c in with_shares(plan).jobs) == pytest.approx(1.0, rel=1e-4)


def test_an_audio_track_encodes_and_measures_its_own_stream(tmp_path):
    preset = PRESETS["abr-h264"]
    args = rendition_args(
        ["-i", "https://s3/a.mp4"], preset, None, BILINGUAL, tmp_path, audio_name="audio-fr-2", audio_index=2
    )
    assert args[args.index("-map") + 1] == "0:a:2" and args.count("-map") == 1
    assert args[-1] == str(tmp_path / "audio-fr-2.m3u8")
    assert args[args.index("-hls_fmp4_init_filename") + 1] == "audio-fr-2_init.mp4"
    assert args[args.index("-hls_segment_filename") + 1] == str(tmp_path / "audio-fr-2_%05d.m4s")
    measure = measure_args("https://s3/a.mp4", stream=2)
    assert measure[measure.index("-map") + 1] == "0:a:2"


def test_each_text_subtitle_track_is_a_child_after_the_first_chunks():
    from mpr_common.events import SubtitleFile, SubtitleStream
    from mpr_transcoder.kinds.package.chord import child_files

    streams = [
        SubtitleStream(index=0, codec="subrip", language="en"),
        SubtitleStream(index=1, codec="dvd_subtitle"),
    ]
    info = msgspec.structs.replace(HD, subtitle_streams=streams)
    asked = [SubtitleFile(key="shows/extra.vtt", language="de")]
    plan = plan_package(package(subtitles=asked), info, [SubtitleFile(key="shows/ep1.fr.srt", language="fr")])
    texts = [c for c in plan.jobs if c.subtitle is not None]
    assert [(c.rendition, c.subtitle.stream, c.subtitle.key) for c in texts] == [
        ("subs-en", 0, None),
        ("subs-fr", None, "shows/ep1.fr.srt"),
        ("subs-de", None, "shows/extra.vtt"),
    ]
    assert plan.notes and "dvd_subtitle" in plan.notes[0]
    for c in texts:
        assert normalize_job(c) == c and as_planned(c, plan) == c and c.watermark is None
    # chunked: the sound, every rung's first chunk, then the subtitles; the package plays without them
    names = [c.job_id.removeprefix("p1-") for c in plan.jobs]
    first = names.index("subs-en")
    assert names[:first] == ["audio", "1080p-c0000", "720p-c0000", "480p-c0000", "360p-c0000"]
    assert lead(plan) == first
    assert (
        abs(
            sum(c.weight for c in with_shares(plan).jobs if c.chunk is None)
            + sum(r.weight for r in with_shares(plan).chunked)
            - 1
        )
        < 1e-6
    )
    main, others = child_files(texts[0])
    assert (
        main == "subs-en.m3u8" and others.fullmatch("subs-en_00003.vtt") and others.fullmatch("subs-en.vtt")
    )
    assert not others.fullmatch("subs-en-2_00000.vtt")
    with pytest.raises(JobRequestError, match="no subtitles in ja"):
        plan_package(package(subtitle_languages=["ja"]), info)
