"""run_job on moto's S3 server with real FFmpeg on media made with lavfi: the catalog's probe saves
ffprobe; HLS segments are uploaded while FFmpeg runs, the playlist last; a failed job never uploads
its playlist and leaves no upload running."""

from __future__ import annotations

import asyncio
import posixpath
import shutil
import time
from fnmatch import fnmatch
from pathlib import Path

import msgspec
import pytest

from mpr_common import storage
from mpr_common.events import PROBE_VERSION, JobRequested, MediaInfo
from mpr_common.jobs import normalize_job
from mpr_common.mediainfo import probe
from mpr_common.presets import PRESETS
from mpr_transcoder import pipeline
from mpr_transcoder.ffmpeg import FfmpegCancelled, FfmpegError
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.pipeline import JobError, run_job
from tests import moto_s3
from tests.media import make_video

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)

SOURCE = "src/clip.mp4"


@pytest.fixture(scope="module")
def source(s3_settings, tmp_path_factory) -> tuple[Path, MediaInfo]:
    path = make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=12, size="320x240")
    storage.get_s3_client(s3_settings).upload_file(str(path), "t-in", SOURCE)
    return path, asyncio.run(probe(str(path), protocols="file"))


@pytest.fixture
def s3(s3_settings):
    return storage.get_s3_client(s3_settings)  # one per test: each registers its own event hooks


class Puts:
    """Keys of PutObject calls in the order they were sent, and when."""

    def __init__(self, s3) -> None:
        self.calls: list[tuple[float, str]] = []
        s3.meta.events.register("provide-client-params.s3.PutObject", self._on_put)

    def _on_put(self, params, **_) -> None:
        self.calls.append((time.monotonic(), params["Key"]))

    @property
    def keys(self) -> list[str]:
        return [k for _, k in self.calls]


async def assert_no_upload_after_return(puts: Puts) -> None:
    sent = len(puts.calls)
    await asyncio.sleep(1.0)  # longer than the uploader's poll interval
    assert len(puts.calls) == sent


def listed(s3, prefix: str) -> dict[str, int]:
    resp = s3.list_objects_v2(Bucket="t-out", Prefix=prefix)
    return {o["Key"]: o["Size"] for o in resp.get("Contents", [])}


@pytest.fixture
def paced_ffmpeg(monkeypatch) -> list[float]:
    """FFmpeg reads the source at 4x real time (12 s of media in ~3 s): segments are finished well before
    it ends. Returns the list that receives the time FFmpeg ended."""
    ended: list[float] = []
    real = pipeline.run_ffmpeg

    async def paced(args, *a, **kw):
        i = args.index("-i")
        try:
            await real([*args[:i], "-readrate", "4", *args[i:]], *a, **kw)
        finally:
            ended.append(time.monotonic())

    monkeypatch.setattr(pipeline, "run_ffmpeg", paced)
    return ended


# --- the catalog's probe -----------------------------------------------------------------------


async def test_known_info_skips_ffprobe(s3, s3_settings, source, tmp_path, monkeypatch):
    _, info = source

    async def no_probe(*a, **kw):
        raise AssertionError("ffprobe ran although the catalog's probe was given")

    monkeypatch.setattr(pipeline, "probe", no_probe)
    asked = []

    async def known(bucket: str, key: str, etag: str) -> MediaInfo:
        asked.append((bucket, key, etag))
        return info

    out = await run_job(
        JobRequested(job_id="thumb-known", kind="thumbnail", source_key=SOURCE, output_key="known/t.jpg"),
        s3=s3,
        s3_settings=s3_settings,
        workdir=tmp_path,
        on_progress=lambda pct, rep: None,
        known_info=known,
    )
    etag = s3.head_object(Bucket="t-in", Key=SOURCE)["ETag"].strip('"')
    assert asked == [("t-in", SOURCE, etag)]
    assert out.output_keys == ["known/t.jpg"] and listed(s3, "known/") == {"known/t.jpg": out.output_size}


@pytest.mark.parametrize("answer", ["none", "raises", "not given"])
async def test_without_known_info_the_source_is_probed(
    s3, s3_settings, source, tmp_path, monkeypatch, answer
):
    probed = []
    real = pipeline.probe

    async def counting_probe(url, **kw):
        probed.append(url)
        return await real(url, **kw)

    monkeypatch.setattr(pipeline, "probe", counting_probe)

    async def known(bucket: str, key: str, etag: str) -> MediaInfo | None:
        if answer == "raises":
            raise RuntimeError("catalog unreachable")
        return None

    out = await run_job(
        JobRequested(job_id=f"thumb-{answer.replace(' ', '-')}", kind="thumbnail", source_key=SOURCE),
        s3=s3,
        s3_settings=s3_settings,
        workdir=tmp_path,
        on_progress=lambda pct, rep: None,
        known_info=None if answer == "not given" else known,
    )
    assert len(probed) == 1 and out.output_size > 0


async def test_a_probe_from_an_older_catalog_is_not_planned_from(s3, s3_settings, source, monkeypatch):
    """A catalog probe made before every audio and subtitle stream and the colour were read (an older
    probe version, or none) would plan too few tracks, or an HDR source as SDR: the source is probed again."""
    _, info = source
    assert info.audio_streams and info.probe_version == PROBE_VERSION  # what ffprobe reads now
    probed = []
    real = pipeline.probe

    async def counting_probe(url, **kw):
        probed.append(url)
        return await real(url, **kw)

    monkeypatch.setattr(pipeline, "probe", counting_probe)
    job = normalize_job(JobRequested(job_id="pkg-info", kind="package", source_key=SOURCE))
    older = msgspec.structs.replace(info, audio_streams=[], probe_version=0)  # from before the stamp

    async def known(bucket: str, key: str, etag: str) -> MediaInfo:
        return older if not probed else info

    assert await pipeline.read_source(job, s3=s3, s3_settings=s3_settings, known_info=known) == info
    assert len(probed) == 1
    assert await pipeline.read_source(job, s3=s3, s3_settings=s3_settings, known_info=known) == info
    assert len(probed) == 1  # a probe of the current version is taken as it is


# --- HLS: segments while FFmpeg runs, playlist last ---------------------------------------------


async def test_hls_segments_upload_while_ffmpeg_runs_playlist_last(
    s3, s3_settings, source, tmp_path, monkeypatch, paced_ffmpeg
):
    kept = tmp_path / "kept"
    real_rmtree = shutil.rmtree

    def keep_then_remove(path, *a, **kw):  # the job's local outputs, to compare with what was uploaded
        shutil.copytree(path, kept)
        real_rmtree(path, *a, **kw)

    monkeypatch.setattr(pipeline.shutil, "rmtree", keep_then_remove)
    puts = Puts(s3)
    out = await run_job(
        JobRequested(
            job_id="hls-ok", kind="hls", source_key=SOURCE, preset="hls-480p", output_key="hls/ok/index.m3u8"
        ),
        s3=s3,
        s3_settings=s3_settings,
        workdir=tmp_path / "work",
        on_progress=lambda pct, rep: None,
    )
    playlist = "hls/ok/index.m3u8"
    segments = sorted(k for k in puts.keys if k != playlist)
    assert len(segments) >= 3
    # Exactly what run_job reported, each file once, the playlist last (as before this change).
    assert out.output_keys == [*segments, playlist]
    assert sorted(puts.keys) == sorted(out.output_keys) and puts.keys[-1] == playlist
    # Some segments went up while FFmpeg was still encoding.
    assert puts.calls[0][0] < paced_ffmpeg[0]
    # Identical bytes, and the playlist names exactly the uploaded segments.
    local = {p.name: p.read_bytes() for p in (kept / "out").iterdir()}
    for key in out.output_keys:
        assert s3.get_object(Bucket="t-out", Key=key)["Body"].read() == local[posixpath.basename(key)]
    assert out.output_size == sum(listed(s3, "hls/ok/").values()) == sum(map(len, local.values()))
    text = local["index.m3u8"].decode()
    assert "#EXT-X-ENDLIST" in text
    assert [f"hls/ok/{line}" for line in text.splitlines() if line.endswith(".ts")] == segments


async def test_hls_failure_after_segments_were_uploaded_never_publishes_the_playlist(
    s3, s3_settings, source, tmp_path, paced_ffmpeg
):
    _, info = source
    puts = Puts(s3)

    async def longer(bucket: str, key: str, etag: str) -> MediaInfo:
        # The catalog says 3x longer than FFmpeg finds: "source is truncated" once FFmpeg has ended.
        return msgspec.structs.replace(info, duration=3 * (info.duration or 0))

    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(
                job_id="hls-trunc", kind="hls", source_key=SOURCE, output_key="hls/trunc/index.m3u8"
            ),
            s3=s3,
            s3_settings=s3_settings,
            workdir=tmp_path,
            on_progress=lambda pct, rep: None,
            known_info=longer,
        )
    assert err.value.reason == "source" and "truncated" in str(err.value)
    assert any(k.endswith(".ts") for k in puts.keys)  # segments had gone up while FFmpeg ran ...
    await assert_no_upload_after_return(puts)
    assert "hls/trunc/index.m3u8" not in puts.keys  # ... but a reader never finds a playlist
    assert set(listed(s3, "hls/trunc/")) == set(puts.keys)
    assert list(tmp_path.iterdir()) == []  # local work dir removed


async def test_hls_cancel_stops_ffmpeg_and_uploads(s3, s3_settings, source, tmp_path, paced_ffmpeg):
    cancel = asyncio.Event()
    puts = Puts(s3)
    loop = asyncio.get_running_loop()

    def cancel_on_first_put(params, **_) -> None:  # boto3 calls it from a worker thread
        loop.call_soon_threadsafe(cancel.set)

    s3.meta.events.register("provide-client-params.s3.PutObject", cancel_on_first_put)
    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(
                job_id="hls-cancel", kind="hls", source_key=SOURCE, output_key="hls/cancel/index.m3u8"
            ),
            s3=s3,
            s3_settings=s3_settings,
            workdir=tmp_path,
            on_progress=lambda pct, rep: None,
            cancelled=cancel,
        )
    assert err.value.reason == "cancelled" and cancel.is_set()
    await assert_no_upload_after_return(puts)
    assert puts.keys and "hls/cancel/index.m3u8" not in puts.keys
    assert set(listed(s3, "hls/cancel/")) == set(puts.keys)


async def test_upload_failure_stops_ffmpeg_early(
    s3, s3_settings, source, tmp_path, monkeypatch, paced_ffmpeg
):
    stopped_by: list[BaseException] = []
    paced = pipeline.run_ffmpeg

    async def watching(*a, **kw):
        try:
            await paced(*a, **kw)
        except FfmpegError as exc:
            stopped_by.append(exc)
            raise

    monkeypatch.setattr(pipeline, "run_ffmpeg", watching)
    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(
                job_id="hls-nobucket",
                kind="hls",
                source_key=SOURCE,
                output_bucket="no-such-bucket",
                output_key="hls/nobucket/index.m3u8",
            ),
            s3=s3,
            s3_settings=s3_settings,
            workdir=tmp_path,
            on_progress=lambda pct, rep: None,
        )
    # The first segment's upload failed: FFmpeg was stopped rather than left to encode the rest.
    assert err.value.reason == "storage" and not err.value.retryable and "bucket not found" in str(err.value)
    assert len(stopped_by) == 1 and isinstance(stopped_by[0], FfmpegCancelled)


async def test_single_file_output_is_uploaded_after_ffmpeg(s3, s3_settings, source, tmp_path):
    puts = Puts(s3)
    out = await run_job(
        JobRequested(
            job_id="audio-1", kind="audio", source_key=SOURCE, preset="mp3-192k", output_key="a/1.mp3"
        ),
        s3=s3,
        s3_settings=s3_settings,
        workdir=tmp_path,
        on_progress=lambda pct, rep: None,
    )
    assert puts.keys == ["a/1.mp3"] and out.output_keys == ["a/1.mp3"]
    head = s3.head_object(Bucket="t-out", Key="a/1.mp3")
    assert head["ContentLength"] == out.output_size and head["ContentType"] == "audio/mpeg"


def test_segment_glob_matches_the_segments_ffmpeg_writes(tmp_path):
    def plan(kind: str):
        job = normalize_job(JobRequested(job_id="j", kind=kind, source_key="a.mp4"))
        info = MediaInfo(duration=8.0, video_codec="h264", audio_codec="aac")
        return build_plan(job, PRESETS[job.preset or ""], "http://s3/a.mp4", info, tmp_path / kind, 10**9)

    hls = plan("hls")
    pattern = hls.args[hls.args.index("-hls_segment_filename") + 1]
    assert hls.segment_glob and fnmatch(Path(pattern % 12).name, hls.segment_glob)
    assert not fnmatch(hls.main_output.name, hls.segment_glob)
    assert plan("transcode").segment_glob is None and plan("thumbnail").segment_glob is None
