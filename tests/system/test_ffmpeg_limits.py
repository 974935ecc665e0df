"""FFmpeg is bounded in more than time: picture size and source duration are checked against the probe
before it runs, its address space is limited, a run whose progress stops is ended, its output stays below
the work dir's free space, it dies with its worker, a worker's leftovers are removed at start, and a kill
by the OOM killer is retried. Real FFmpeg on lavfi media, run_job on the test stack's S3 server (moto)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpr_common import storage
from mpr_common.events import PROBE_VERSION, JobRequested, MediaInfo
from mpr_transcoder import pipeline
from mpr_transcoder.ffmpeg import (
    FfmpegCancelled,
    FfmpegKilled,
    FfmpegOutOfMemory,
    FfmpegStalled,
    ProgressReport,
    run_ffmpeg,
)
from mpr_transcoder.ffmpeg.argv import VIDEO_TIMING
from mpr_transcoder.pipeline import JobError, Limits, run_job
from mpr_transcoder.settings import TranscoderSettings
from mpr_transcoder.workdir import clean_workdir
from tests.media import make_timed_mkv, make_video
from tests.moto_s3 import buckets_on

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
BASE = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1"]
CLIP = "lim/clip.mp4"  # 320x240, 6 s
FAR = "lim/far.mkv"  # two frames 86,000 s apart (longer than the default source limit)
GAP = "lim/gap.mkv"  # two frames 20,000 s apart: FFmpeg writes 500,000 duplicates between them
JUMP = "lim/jump.mkv"  # two frames 40,000 s apart: under the source limit, a million duplicates
VFR = "lim/vfr.mkv"  # video only: 2 s at 25 fps, then a frame every 0.5 s up to 6.5 s
# x264 on a 4000x4000 picture: about 340 MB resident, more than a 600 MiB address space allows.
HUNGRY = [
    *BASE,
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=4000x4000:duration=1:rate=5",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-threads",
    "1",
    "-f",
    "null",
    "-",
]
MiB = 1024**2


def make_gap_mkv(path: Path, gap: int) -> Path:
    """A few KB of Matroska: one frame at 0 s, the next at ``gap`` s, 25 fps declared."""
    return make_timed_mkv(path, 2, f"if(eq(N,0),0,{gap})")


def make_vfr_mkv(path: Path) -> Path:
    return make_timed_mkv(path, 60, "if(lt(N,50),N*0.04,2+(N-50)*0.5)")


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return name, state, int(ppid)


def ffmpeg_children(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and st[0] == "ffmpeg" and st[2] == ppid and st[1] not in "ZX":
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] not in "ZX"  # a zombie has ended


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def address_space_limit(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft)
    raise AssertionError("no address-space line")


def kill_on_first_report(sig: int = signal.SIGKILL):
    """A progress callback that kills this process's FFmpeg child, as the OOM killer would."""
    killed: list[int] = []

    def on_progress(*args: object) -> None:
        if not killed:
            for pid in ffmpeg_children(os.getpid()):
                os.kill(pid, sig)
                killed.append(pid)

    return on_progress, killed


# --- S3 and media ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_settings(stack, tmp_path_factory):
    assert stack.moto
    settings = buckets_on(stack.moto.url, "lim-in", "lim-out")
    client = storage.get_s3_client(settings)
    media = tmp_path_factory.mktemp("media")
    client.upload_file(str(make_video(media / "clip.mp4", seconds=6, size="320x240")), "lim-in", CLIP)
    client.upload_file(str(make_gap_mkv(media / "far.mkv", 86_000)), "lim-in", FAR)
    client.upload_file(str(make_gap_mkv(media / "gap.mkv", 20_000)), "lim-in", GAP)
    client.upload_file(str(make_gap_mkv(media / "jump.mkv", 40_000)), "lim-in", JUMP)
    client.upload_file(str(make_vfr_mkv(media / "vfr.mkv")), "lim-in", VFR)
    return settings


@pytest.fixture(scope="module")
def s3(s3_settings):
    # One client for the module: making a boto3 client costs about 0.1 s of CPU (its session loads the
    # service's models), and a client keeps no state between the jobs that use it.
    return storage.get_s3_client(s3_settings)


@pytest.fixture
def no_ffmpeg(monkeypatch):
    async def refuse(*a, **kw):
        raise AssertionError("FFmpeg ran although a limit should have stopped the job first")

    monkeypatch.setattr(pipeline, "run_ffmpeg", refuse)


async def job(s3, s3_settings, workdir: Path, key: str = CLIP, limits: Limits | None = None, **kw):
    kind = kw.pop("kind", "transcode")
    known = kw.pop("known_info", None)
    return await run_job(
        JobRequested(job_id=f"lim-{time.monotonic_ns()}", kind=kind, source_key=key, **kw),
        s3=s3,
        s3_settings=s3_settings,
        workdir=workdir,
        on_progress=lambda pct, rep: None,
        limits=limits or Limits(),
        known_info=known,
    )


def assert_no_ffmpeg_left() -> None:
    assert wait_for(lambda: not ffmpeg_children(os.getpid()), 5)


# --- 1. picture size, checked against the probe ------------------------------------------------------


async def test_a_picture_wider_than_the_limit_fails_before_ffmpeg(s3, s3_settings, tmp_path, no_ffmpeg):
    with pytest.raises(JobError) as err:  # the source is probed for real: 320x240
        await job(s3, s3_settings, tmp_path, limits=Limits(max_width=300))
    assert err.value.reason == "source" and not err.value.retryable
    assert "320x240" in str(err.value) and "TRANSCODER_MAX_WIDTH=300" in str(err.value)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path, limits=Limits(max_pixels=320 * 240 - 1))
    assert f"TRANSCODER_MAX_PIXELS={320 * 240 - 1}" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # not even a work dir was made


async def test_a_16000_pixel_square_fails_at_once_with_the_default_limits(
    s3, s3_settings, tmp_path, no_ffmpeg
):
    async def huge(bucket: str, key: str, etag: str) -> MediaInfo:
        return MediaInfo(
            duration=0.04,
            video_codec="png",
            width=16000,
            height=16000,
            streams=1,
            probe_version=PROBE_VERSION,
        )

    t0 = time.monotonic()
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path, known_info=huge)
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert err.value.reason == "source" and "16000x16000" in msg, msg
    defaults = TranscoderSettings()
    for name, value in (
        ("TRANSCODER_MAX_WIDTH", defaults.max_width),
        ("TRANSCODER_MAX_HEIGHT", defaults.max_height),
        ("TRANSCODER_MAX_PIXELS", defaults.max_pixels),
    ):
        assert f"{name}={value}" in msg
    assert defaults.max_width < 16000 and defaults.max_pixels < 16000 * 16000


# --- 2. address space -----------------------------------------------------------------------------------


async def test_ffmpeg_runs_under_the_address_space_limit(tmp_path):
    seen: list[int | None] = []

    def on_progress(rep: ProgressReport) -> None:
        if not seen:
            (pid,) = ffmpeg_children(os.getpid())
            seen.append(address_space_limit(pid))

    args = [*BASE, "-re", "-f", "lavfi", "-i", "testsrc=duration=1", "-f", "null", "-"]
    await run_ffmpeg(args, on_progress, timeout=60, max_memory=1024 * MiB)
    assert seen == [1024 * MiB]


async def test_ffmpeg_over_its_memory_limit_fails_with_a_clear_reason():
    await run_ffmpeg(HUNGRY, lambda r: None, timeout=60)  # fine without the limit ...
    with pytest.raises(FfmpegOutOfMemory) as err:  # ... not with 600 MiB of address space
        await run_ffmpeg(HUNGRY, lambda r: None, timeout=60, max_memory=600 * MiB)
    assert "600 MiB" in str(err.value)


async def test_the_job_names_the_memory_limit(s3, s3_settings, tmp_path, monkeypatch):
    real = pipeline.run_ffmpeg
    limits_seen: list[int | None] = []

    async def hungry(args, on_progress, **kw):  # the job's limits, on a picture that needs more
        limits_seen.append(kw.get("max_memory"))
        await real(HUNGRY, on_progress, **kw)

    monkeypatch.setattr(pipeline, "run_ffmpeg", hungry)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path, limits=Limits(ffmpeg_max_memory=600 * MiB))
    assert limits_seen == [600 * MiB]
    assert err.value.reason == "ffmpeg" and not err.value.retryable
    assert f"TRANSCODER_FFMPEG_MAX_MEMORY={600 * MiB}" in str(err.value)
    assert Limits().ffmpeg_max_memory == TranscoderSettings().ffmpeg_max_memory > 0


# --- 3. source duration, output duration, stalls --------------------------------------------------------


async def test_the_thread_limit_reaches_the_encoder(s3, s3_settings, tmp_path):
    # x264 writes the settings it ran with into the stream (an SEI): what FFmpeg was really given.
    ran = {}
    for threads in (0, 1):
        out = f"lim/threads-{threads}.mp4"
        await job(s3, s3_settings, tmp_path, output_key=out, limits=Limits(ffmpeg_threads=threads))
        body = s3.get_object(Bucket="lim-out", Key=out)["Body"].read()
        ran[threads] = re.search(rb" threads=(\d+) lookahead_threads=(\d+)", body).groups()
    assert ran[1] == (b"1", b"1")
    assert ran[0] != ran[1]  # FFmpeg's own choice: more than one on this machine's cores


async def test_a_source_longer_than_the_limit_fails_at_once(s3, s3_settings, tmp_path, no_ffmpeg):
    t0 = time.monotonic()
    with pytest.raises(JobError) as err:  # probed for real: 86,000 s in 5 KB
        await job(s3, s3_settings, tmp_path, key=FAR)
    assert time.monotonic() - t0 < 10
    limit = TranscoderSettings().max_source_duration
    assert limit < 86_000
    assert err.value.reason == "source" and "86000" in str(err.value)
    assert f"TRANSCODER_MAX_SOURCE_DURATION={limit:g}" in str(err.value)


async def test_ffmpeg_stuck_writing_duplicates_is_stopped_by_the_stall_limit(tmp_path):
    src = make_gap_mkv(tmp_path / "gap.mkv", 20_000)
    # one encoder thread: a stalled FFmpeg spins on every thread it has until it is stopped
    out = [*("-c:v", "libx264", "-preset", "veryfast", "-threads", "1"), str(tmp_path / "o.mp4")]
    args = [*BASE, "-i", str(src), *out]
    t0 = time.monotonic()
    with pytest.raises(FfmpegStalled, match="no progress for 1s"):
        await run_ffmpeg(args, lambda r: None, timeout=600, stall_timeout=1, max_frame_gap=None)
    assert time.monotonic() - t0 < 10
    assert_no_ffmpeg_left()


async def test_steady_progress_is_not_a_stall(tmp_path):
    reports: list[ProgressReport] = []
    args = [*BASE, "-re", "-f", "lavfi", "-i", "testsrc=duration=3", "-f", "null", "-"]
    await run_ffmpeg(args, reports.append, timeout=60, stall_timeout=1.5)  # 3 s at real time
    assert reports[-1].done


async def test_a_job_on_frames_hours_apart_fails_in_seconds_naming_the_jump(s3, s3_settings, tmp_path):
    # 40,000 s in 12 KB, under the 12 h source limit: with the default limits (a 300 s stall limit) the
    # job is refused in seconds, from what the source holds, not after minutes of duplicated frames.
    assert TranscoderSettings().max_source_duration > 40_000
    t0 = time.monotonic()
    with pytest.raises(JobError) as err:
        await asyncio.wait_for(job(s3, s3_settings, tmp_path, key=JUMP), 90)
    assert time.monotonic() - t0 < 30
    assert err.value.reason == "source" and not err.value.retryable
    assert "the source's timestamps jump by about 399" in str(err.value), err.value
    assert_no_ffmpeg_left()
    assert list(tmp_path.iterdir()) == []


async def test_every_file_output_is_refused_on_a_jump(s3, s3_settings, tmp_path):
    # (HLS keeps a constant frame rate, see ffmpeg_command.VIDEO_TIMING: there a jump shows as duplicates,
    # which FFmpeg 7 reports as it writes them and FFmpeg 5 does not, so the stall limit ends it.)
    for preset, out in (("h264-720p", "lim/j.mp4"), ("vp9-720p", "lim/j.webm")):
        with pytest.raises(JobError) as err:
            await asyncio.wait_for(
                job(s3, s3_settings, tmp_path, key=GAP, kind="transcode", output_key=out, preset=preset), 90
            )
        assert err.value.reason == "source" and "timestamps jump" in str(err.value), (preset, err.value)


async def test_a_variable_frame_rate_source_is_transcoded_whole(s3, s3_settings, tmp_path):
    # Its last frames are 0.5 s apart: -progress, which reports the last packet muxed (a B-frame shown
    # before them), reads a second short of the 6.5 s declared; the output holds all of it.
    for kind, out in (("transcode", "lim/vfr.mp4"), ("hls", "lim/vfr/index.m3u8")):
        outcome = await job(s3, s3_settings, tmp_path, key=VFR, kind=kind, output_key=out)
        assert outcome.output_size > 0 and outcome.duration == pytest.approx(6.5, abs=0.1)
    body = s3.get_object(Bucket="lim-out", Key="lim/vfr.mp4")["Body"].read()
    (tmp_path / "o.mp4").write_bytes(body)
    info = subprocess.run(  # noqa: ASYNC221 (a test: the loop has nothing else to do)
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ]
        + [str(tmp_path / "o.mp4")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(info.stdout.strip()) == 60  # every source frame, none duplicated


async def test_a_job_whose_ffmpeg_writes_duplicates_is_ended_by_the_stall_limit(
    s3, s3_settings, tmp_path, monkeypatch
):
    # A command with a constant frame rate and no gap check (FFmpeg 5 copies the picture without a
    # report): the stall limit still ends it.
    real = pipeline.run_ffmpeg

    async def constant_rate(args, on_progress, **kw):
        i = args.index("-fps_mode")  # the muxer's own frame rate mode, as before VIDEO_TIMING
        # and one encoder thread: a stalled FFmpeg spins on every thread it has until it is stopped
        args = [*args[:i], "-threads", "1", *args[i + len(VIDEO_TIMING) :]]
        await real(args, on_progress, **{**kw, "max_frame_gap": None})

    monkeypatch.setattr(pipeline, "run_ffmpeg", constant_rate)
    t0 = time.monotonic()
    # (1 s, as in the test of run_ffmpeg above: FFmpeg spins on a core for as long as the limit lets it)
    with pytest.raises(JobError) as err:  # 20,000 s: under the source limit, so FFmpeg starts
        await job(s3, s3_settings, tmp_path, key=GAP, limits=Limits(stall_timeout=1))
    assert time.monotonic() - t0 < 20
    assert err.value.reason == "timeout" and not err.value.retryable
    assert "TRANSCODER_STALL_TIMEOUT=1" in str(err.value)
    assert_no_ffmpeg_left()
    assert list(tmp_path.iterdir()) == []


async def test_output_duration_is_bounded_by_the_probed_duration(s3, s3_settings, tmp_path, monkeypatch):
    real = pipeline.run_ffmpeg
    seen: list[list[str]] = []

    async def recording(args, *a, **kw):
        seen.append(args)
        await real(args, *a, **kw)

    monkeypatch.setattr(pipeline, "run_ffmpeg", recording)
    await job(s3, s3_settings, tmp_path, kind="audio", output_key="lim/a.m4a")
    (args,) = seen
    t = float(args[args.index("-t") + 1])
    assert 6.0 < t <= 6.0 + 30 and args.index("-t") > args.index("-i")


# --- 4. output size below the work dir's free space --------------------------------------------------------


def test_default_max_output_fits_the_kubernetes_emptydir():
    assert TranscoderSettings().max_output_bytes == Limits().max_output_bytes < 20 * 1024**3
    assert TranscoderSettings().disk_reserve_bytes == Limits().disk_reserve_bytes > 0


async def test_output_over_the_size_limit_fails_naming_it(s3, s3_settings, tmp_path):
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path, limits=Limits(max_output_bytes=50_000))
    assert not err.value.retryable and "TRANSCODER_MAX_OUTPUT_BYTES=50000" in str(err.value)


async def test_hls_output_is_bounded_too(s3, s3_settings, tmp_path, monkeypatch):
    # FFmpeg's -fs does not see the HLS muxer's segment files: the uploader's watch counts them, and
    # FFmpeg (paced here at 2x real time: 3 s) is stopped as soon as they pass the limit.
    real = pipeline.run_ffmpeg
    stopped: list[BaseException] = []

    async def paced(args, *a, **kw):
        i = args.index("-i")
        try:
            await real([*args[:i], "-readrate", "2", *args[i:]], *a, **kw)
        except FfmpegCancelled as exc:
            stopped.append(exc)
            raise

    monkeypatch.setattr(pipeline, "run_ffmpeg", paced)
    with pytest.raises(JobError) as err:
        await job(
            s3,
            s3_settings,
            tmp_path,
            kind="hls",
            output_key="lim/h/index.m3u8",
            limits=Limits(max_output_bytes=60_000),
        )
    assert not err.value.retryable and "TRANSCODER_MAX_OUTPUT_BYTES=60000" in str(err.value)
    assert len(stopped) == 1
    assert list(tmp_path.iterdir()) == []


async def test_output_is_bounded_by_free_space(s3, s3_settings, tmp_path, monkeypatch):
    reserve = Limits().disk_reserve_bytes
    monkeypatch.setattr(pipeline, "free_space", lambda path: reserve + 50_000)
    real = pipeline.run_ffmpeg
    seen: list[list[str]] = []

    async def recording(args, *a, **kw):
        seen.append(args)
        await real(args, *a, **kw)

    monkeypatch.setattr(pipeline, "run_ffmpeg", recording)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path)
    assert seen[0][seen[0].index("-fs") + 1] == "50000"
    # Another replica, or this one later, may have the room: retried.
    assert err.value.retryable and f"TRANSCODER_DISK_RESERVE_BYTES={reserve}" in str(err.value)


async def test_no_room_in_the_workdir_fails_before_ffmpeg_and_is_retried(
    s3, s3_settings, tmp_path, monkeypatch, no_ffmpeg
):
    reserve = Limits().disk_reserve_bytes
    monkeypatch.setattr(pipeline, "free_space", lambda path: reserve - 1)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path)
    assert err.value.retryable and f"TRANSCODER_DISK_RESERVE_BYTES={reserve}" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# --- 5. FFmpeg dies with its worker -----------------------------------------------------------------------

RUNNER = """
import asyncio, sys
from mpr_transcoder.ffmpeg import run_ffmpeg
args = ["ffmpeg", "-nostdin", "-v", "error", "-progress", "pipe:1", "-re", "-f", "lavfi", "-i",
        "testsrc=duration=600", "-f", "null", "-"]
asyncio.run(run_ffmpeg(args, lambda r: print("progress", flush=True), timeout=600))
"""


def test_kill_9_of_the_worker_kills_its_ffmpeg():
    worker = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=REPO, stdout=subprocess.PIPE)
    child: list[int] = []
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == b"progress"
        child = ffmpeg_children(worker.pid)
        assert len(child) == 1
        worker.kill()  # SIGKILL: no handler, no cleanup runs in the worker
        worker.wait()
        assert wait_for(lambda: not running(child[0]), 5), "FFmpeg outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        for pid in child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- 6. leftovers of a killed worker -------------------------------------------------------------------------


def test_clean_workdir_removes_stale_job_dirs_only(tmp_path):
    old = time.time() - 3600
    stale = tmp_path / "job-dead-abc"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "output.mp4").write_bytes(b"x" * 1000)
    (stale / ".lock").touch()
    locked = tmp_path / "job-live-def"
    (locked / "out").mkdir(parents=True)
    (locked / ".lock").touch()
    fresh = tmp_path / "job-new-ghi"
    fresh.mkdir()
    other = tmp_path / "keep-me"
    other.mkdir()
    for d in (stale, locked, other):
        os.utime(d, (old, old))
    with open(locked / ".lock", "r+") as held:  # a job that runs: its process holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = clean_workdir(tmp_path, older_than=60)
    assert removed == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-live-def", "job-new-ghi", "keep-me"]
    assert clean_workdir(tmp_path / "missing", older_than=60) == []


def test_the_transcoder_cleans_its_workdir_before_it_starts(tmp_path, monkeypatch):
    from mpr_transcoder import __main__ as entry

    stale = tmp_path / "job-killed-xyz"
    (stale / "out").mkdir(parents=True)
    os.utime(stale, (time.time() - 3600,) * 2)
    seen: list[bool] = []

    async def serve(settings: TranscoderSettings) -> None:
        seen.append(stale.exists())

    monkeypatch.setattr(entry, "serve", serve)
    monkeypatch.setattr(entry, "setup_logging", lambda *a: None)
    monkeypatch.setattr(entry, "setup_tracing", lambda *a: None)
    monkeypatch.setenv("TRANSCODER_WORKDIR", str(tmp_path))
    entry.main()
    assert seen == [False]


async def test_clean_workdir_leaves_a_running_job_alone(s3, s3_settings, tmp_path):
    work = tmp_path / "work"
    during: list[list[Path]] = []

    def on_progress(pct: float, rep: ProgressReport) -> None:
        if not during:
            during.append(clean_workdir(work, older_than=0))  # another replica starting, same dir

    out = await run_job(
        JobRequested(job_id="lim-clean", kind="audio", source_key=CLIP, output_key="lim/clean.m4a"),
        s3=s3,
        s3_settings=s3_settings,
        workdir=work,
        on_progress=on_progress,
    )
    assert during == [[]] and out.output_size > 0
    assert list(work.iterdir()) == []


# --- 7. killed by a signal (the OOM killer) -------------------------------------------------------------------


async def test_ffmpeg_killed_by_sigkill_is_reported_as_killed():
    on_progress, killed = kill_on_first_report()
    args = [*BASE, "-re", "-f", "lavfi", "-i", "testsrc=duration=60", "-f", "null", "-"]
    with pytest.raises(FfmpegKilled) as err:
        await run_ffmpeg(args, on_progress, timeout=60)
    assert len(killed) == 1 and err.value.returncode == -signal.SIGKILL
    assert "SIGKILL" in str(err.value)


async def test_a_job_whose_ffmpeg_is_sigkilled_is_retried(s3, s3_settings, tmp_path, monkeypatch):
    real = pipeline.run_ffmpeg
    on_kill, killed = kill_on_first_report()

    async def oom_killed(args, on_progress, **kw):
        def both(rep: ProgressReport) -> None:
            on_progress(rep)
            on_kill()

        i = args.index("-i")  # paced, so that FFmpeg is still running at its first report
        await real([*args[:i], "-readrate", "1", *args[i:]], both, **kw)

    monkeypatch.setattr(pipeline, "run_ffmpeg", oom_killed)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path)
    assert len(killed) == 1
    assert err.value.retryable and err.value.reason == "internal"
    assert "SIGKILL" in str(err.value) and "out of memory" in str(err.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_crash_is_not_retried(s3, s3_settings, tmp_path, monkeypatch):
    real = pipeline.run_ffmpeg
    on_kill, killed = kill_on_first_report(signal.SIGSEGV)

    async def crashing(args, on_progress, **kw):
        def both(rep: ProgressReport) -> None:
            on_progress(rep)
            on_kill()

        i = args.index("-i")
        await real([*args[:i], "-readrate", "1", *args[i:]], both, **kw)

    monkeypatch.setattr(pipeline, "run_ffmpeg", crashing)
    with pytest.raises(JobError) as err:
        await job(s3, s3_settings, tmp_path)
    assert len(killed) == 1 and not err.value.retryable and err.value.reason == "ffmpeg"
    assert "SIGSEGV" in str(err.value)
