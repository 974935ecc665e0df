"""Scene changes in the transcoder: scdet's log read back, one detection per object version across
concurrent jobs (the scene store over an in-memory stand-in of the KV bucket), and what the kinds make of
the cuts: a transcode's forced key frames, a preview's clips and a storyboard's poster."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.errors import NoServersError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from mpr_common.codec import decode
from mpr_common.events import JobRequested, MediaInfo, PreviewOptions
from mpr_common.jobs import normalize_job
from mpr_common.presets import PRESETS
from mpr_common.scenes import DONE, SourceScenes, scenes_key
from mpr_transcoder.ffmpeg import FfmpegCancelled, FfmpegError
from mpr_transcoder.ffmpeg.scdet import parse_scdet
from mpr_transcoder.kinds.preview import preview_clips
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.kinds.storyboard import default_poster_time, poster_time
from mpr_transcoder.scene_store import SceneStore
from tests.fakes import WRONG_LAST_ON_DELETE

times = st.lists(st.decimals(0, 10_000, places=3).map(float), max_size=20)


@given(times, st.lists(st.sampled_from(["frame=  100 fps=0.0", "[scdet @ 0x1] lavfi.scd.score: 3", ""])))
def test_scdets_lines_give_their_times_sorted_once(cuts: list[float], noise: list[str]) -> None:
    lines = [f"[Parsed_scdet_1 @ 0x5] lavfi.scd.score: 35.120, lavfi.scd.time: {t}" for t in cuts]
    text = "\n".join(lines + noise + lines[:1])
    assert parse_scdet(text) == sorted(set(cuts))


class FakeKV:
    """The part of nats-py's KeyValue the store uses: revisions, create and compare-and-set updates."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes | None, int]] = {}
        self.seq = 0
        self.down = False

    async def get(self, key: str):
        if self.down:
            raise NoServersError
        value, rev = self.data.get(key, (None, 0))
        if value is None:
            raise KeyNotFoundError
        return SimpleNamespace(value=value, revision=rev)

    def _write(self, key: str, value: bytes | None) -> int:
        self.seq += 1
        self.data[key] = (value, self.seq)
        return self.seq

    async def create(self, key: str, value: bytes) -> int:
        if self.data.get(key, (None, 0))[0] is not None:
            raise KeyWrongLastSequenceError
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        if self.data.get(key, (None, 0))[1] != last:
            raise KeyWrongLastSequenceError
        return self._write(key, value)

    async def delete(self, key: str, last: int) -> None:
        if self.data.get(key, (None, 0))[1] != last:
            raise WRONG_LAST_ON_DELETE  # what nats-py raises (tests/system/test_kv_compare_and_set.py)
        self._write(key, None)

    def entry(self, bucket: str, key: str) -> SourceScenes:
        value = self.data[scenes_key(bucket, key)][0]
        assert value is not None
        return decode(value, SourceScenes)


def _store(kv: FakeKV, **kw) -> SceneStore:
    return SceneStore(kv, "t1", poll_seconds=0.001, **kw)  # type: ignore[arg-type]


class Detector:
    def __init__(self, cuts: list[float], fail: Exception | None = None) -> None:
        self.cuts, self.fail, self.runs = cuts, fail, 0

    async def __call__(self) -> list[float]:
        self.runs += 1
        await asyncio.sleep(0.01)  # the other job reads the claim meanwhile
        if self.fail is not None:
            raise self.fail
        return self.cuts


def test_two_jobs_on_one_source_detect_once_and_a_changed_object_again() -> None:
    kv, detect = FakeKV(), Detector([2.0, 4.0])

    async def go() -> None:
        a, b = _store(kv), _store(kv)
        got = await asyncio.gather(
            a.scenes("in", "x.mp4", "e1", 9, detect), b.scenes("in", "x.mp4", "e1", 9, detect)
        )
        assert got == [[2.0, 4.0], [2.0, 4.0]] and detect.runs == 1
        stored = kv.entry("in", "x.mp4")
        assert (stored.state, stored.scenes, stored.etag, stored.by) == (DONE, [2.0, 4.0], "e1", "t1")
        assert await a.scenes("in", "x.mp4", "e1", 9, detect) == [2.0, 4.0] and detect.runs == 1
        assert await a.scenes("in", "x.mp4", "e2", 9, Detector([1.0])) == [1.0]  # overwritten object
        assert kv.entry("in", "x.mp4").etag == "e2"

    asyncio.run(go())


def test_a_job_that_only_reads_gets_scenes_once_they_are_detected_for_that_version() -> None:
    kv = FakeKV()

    async def go() -> None:
        store = _store(kv)
        assert await store.known("in", "x.mp4", "e1", 9) is None  # nobody detected them
        await store._claim(scenes_key("in", "x.mp4"), _mine(), None)
        assert await store.known("in", "x.mp4", "e1", 9) is None  # being detected: not waited for
        await _store(kv, claim_seconds=0.0).scenes("in", "x.mp4", "e1", 9, Detector([2.5]))
        assert await store.known("in", "x.mp4", "e1", 9) == [2.5]
        assert await store.known("in", "x.mp4", "e2", 9) is None  # another version of the object

    asyncio.run(go())


def test_a_dead_transcoders_claim_is_taken_over_once_it_is_old() -> None:
    kv, now = FakeKV(), [1000.0]
    dead = _store(kv, clock=lambda: now[0])

    async def go() -> None:
        await dead._claim(scenes_key("in", "x.mp4"), _mine(), None)
        now[0] += 11.0  # not renewed: its transcoder is gone
        assert await _store(kv, clock=lambda: now[0]).scenes("in", "x.mp4", "e1", 9, Detector([3.0])) == [3.0]

    asyncio.run(go())


def _mine() -> SourceScenes:
    return SourceScenes(bucket="in", key="x.mp4", etag="e1", size=9, state="detecting", by="dead")


def test_a_failed_detection_goes_on_without_scenes_and_leaves_no_claim() -> None:
    kv = FakeKV()

    async def go() -> None:
        assert await _store(kv).scenes("in", "x.mp4", "e1", 9, Detector([], FfmpegError("bad", 1, ""))) == []
        with pytest.raises(FfmpegCancelled):
            await _store(kv).scenes("in", "x.mp4", "e1", 9, Detector([], FfmpegCancelled("stop", None, "")))
        assert kv.data[scenes_key("in", "x.mp4")][0] is None  # withdrawn: the next job detects at once
        assert await _store(kv).scenes("in", "x.mp4", "e1", 9, Detector([5.0])) == [5.0]

    asyncio.run(go())


def test_without_the_store_a_job_detects_on_its_own() -> None:
    kv = FakeKV()
    kv.down = True
    detect = Detector([1.5])
    assert asyncio.run(_store(kv).scenes("in", "x.mp4", "e1", 9, detect)) == [1.5] and detect.runs == 1


def test_a_transcode_forces_key_frames_at_the_given_times_hls_keeps_its_own(tmp_path: Path) -> None:
    info = MediaInfo(duration=6.0, video_codec="h264", audio_codec="aac", width=320, height=180)
    job = normalize_job(JobRequested(job_id="j", kind="transcode", source_key="a.mp4"))
    args = build_plan(
        job, PRESETS[job.preset or ""], "u", info, tmp_path / "o", 10**9, key_frames=[2.0, 4.0]
    ).args
    assert args[args.index("-force_key_frames") + 1] == "2.000,4.000"
    assert (
        "-force_key_frames"
        not in build_plan(job, PRESETS[job.preset or ""], "u", info, tmp_path / "p", 10**9).args
    )
    hls = normalize_job(JobRequested(job_id="h", kind="hls", source_key="a.mp4"))
    args = build_plan(hls, PRESETS[hls.preset or ""], "u", info, tmp_path / "h", 10**9, key_frames=[2.0]).args
    assert args[args.index("-force_key_frames") + 1].startswith("expr:")


def test_a_transcode_of_the_whole_source_finds_scenes_as_a_second_output(tmp_path: Path) -> None:
    info = MediaInfo(duration=6.0, video_codec="h264", audio_codec="aac", width=320, height=180)
    job = normalize_job(JobRequested(job_id="j", kind="transcode", source_key="a.mp4"))
    args = build_plan(job, PRESETS[job.preset or ""], "u", info, tmp_path / "o", 10**9, find_scenes=True).args
    main = args.index(str(tmp_path / "o" / "output.mp4"))
    assert args[main + 1 :][:2] == ["-map", "0:v:0"] and args[-3:] == ["-f", "null", "-"]
    assert "scdet" in args[args.index("-filter:v", main) + 1]
    assert args[args.index("-t", main) + 1] == args[args.index("-t") + 1]  # bounded as the output


def test_scenes_found_on_the_way_are_kept_unless_another_jobs_are() -> None:
    kv = FakeKV()

    async def go() -> None:
        store = _store(kv)
        await store.offer("in", "x.mp4", "e1", 9, [2.0])
        await store.offer("in", "x.mp4", "e1", 9, [9.0])  # the first kept holds
        assert await store.known("in", "x.mp4", "e1", 9) == [2.0]
        await store.offer("in", "x.mp4", "e2", 9, [3.0])  # a new version replaces it
        assert await store.known("in", "x.mp4", "e2", 9) == [3.0]
        kv.down = True
        await store.offer("in", "x.mp4", "e3", 9, [1.0])  # no store: nothing kept, no error

    asyncio.run(go())


def test_preview_clips_follow_scenes_when_there_is_one_per_clip() -> None:
    opts = PreviewOptions(clips=3, clip_seconds=1.0)
    assert preview_clips(6.0, opts, [2.0, 4.0]) == [(0.2, 1.0), (2.2, 1.0), (4.2, 1.0)]
    assert preview_clips(6.0, opts) == [(0.5, 1.0), (2.5, 1.0), (4.5, 1.0)]
    assert preview_clips(6.0, opts, [4.0]) == preview_clips(6.0, opts)  # too few: evenly


def test_the_poster_is_taken_after_the_cut_nearest_ten_percent_in() -> None:
    assert poster_time(60.0, [2.0, 30.0]) == 2.2  # 10 % in: 6 s, nearer 2 s than 30 s
    assert poster_time(60.0, [5.0, 9.0]) == 5.2
    assert poster_time(60.0, []) == default_poster_time(60.0)
