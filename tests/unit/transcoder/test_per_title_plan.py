"""A per-title package's plan and the reading of its analysis: the rungs the analysis dropped get no
child, each kept rung's children (every chunk) carry its chosen rate settings; the probe command is
the rung's own encoder at every probe CRF; the probes' and scene detector's logs are read as FFmpeg
writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpr_common.events import JobRequested, LadderChoice, MediaInfo, RungChoice, RungSettings
from mpr_common.jobs import normalize_job
from mpr_common.per_title import PROBE_CRFS
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.scdet import read_scenes, scene_args
from mpr_transcoder.kinds.package.analysis import probe_args, read_probes
from mpr_transcoder.kinds.package.children import as_planned, plan_package

HD = MediaInfo(duration=30.0, video_codec="h264", width=1920, height=1080, audio_codec="aac", fps=25.0)


def _rung(name: str, height: int, kept: bool, crf: int = 38) -> RungChoice:
    return RungChoice(
        name=name,
        height=height,
        kept=kept,
        reason="test",
        crf=crf,
        max_rate="400k",
        buf_size="800k",
        predicted_kbps=250.0,
        predicted_quality=40.5,
    )


LADDER = LadderChoice(
    metric="psnr",
    target=40.0,
    rungs=[
        _rung("1080p", 1080, True, 36),
        _rung("720p", 720, False),
        _rung("480p", 480, False),
        _rung("360p", 360, True, 39),
    ],
)


def package(**kw: object) -> JobRequested:
    return normalize_job(
        JobRequested(job_id="p1", kind="package", source_key="talk.mp4", ladder="per-title", **kw)  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("chunk_seconds", [0, 12])
def test_only_kept_rungs_get_children_and_each_carries_its_rate(chunk_seconds: float) -> None:
    plan = plan_package(package(chunk_seconds=chunk_seconds), HD, ladder=LADDER)
    video = [c for c in plan.jobs if c.rendition in ("1080p", "720p", "480p", "360p")]
    assert {c.rendition for c in video} == {"1080p", "360p"}
    assert len(video) == (2 if not chunk_seconds else 2 * len(plan.spans))
    for c in video:
        crf = 36 if c.rendition == "1080p" else 39
        assert c.rung == RungSettings(crf=crf, max_rate="400k", buf_size="800k")
        assert as_planned(c, plan) == c and normalize_job(c) == c
    assert all(c.rung is None for c in plan.jobs if c.rendition == "audio")
    assert plan.ladder == LADDER


def test_a_fixed_package_has_no_ladder_and_no_rung_settings() -> None:
    plan = plan_package(normalize_job(JobRequested(job_id="p1", kind="package", source_key="talk.mp4")), HD)
    assert plan.ladder is None and all(c.rung is None for c in plan.jobs)


def test_probe_command_decodes_the_samples_once_and_encodes_every_crf(tmp_path: Path) -> None:
    preset = PRESETS["abr-h264"]
    rung = preset.ladder[1]
    args, files = probe_args("https://s3/x.mp4", [1.0, 9.0, 20.0], 1.0, preset, rung, HD, tmp_path)
    assert args.count("-i") == 3 and args.count("-ss") == 3
    assert [args[i + 1] for i, a in enumerate(args) if a == "-crf"] == [str(c) for c in PROBE_CRFS]
    assert args.count("-x264-params") == len(PROBE_CRFS) and len(files) == len(PROBE_CRFS)
    assert "-maxrate" in args and "-force_key_frames" in args  # the rung's own GOP and options
    assert "concat=n=3" in args[args.index("-filter_complex") + 1]
    assert "scdet" in " ".join(scene_args("https://s3/x.mp4"))


def _frame(address: str, n: int, psnr: float, ssim: float) -> str:
    return (
        f"[libx264 @ {address}] frame= {n} QP=30.00 NAL=2 Slice:P Poc:{2 * n} I:0 P:10 SKIP:0 size=500 bytes "
        f"PSNR Y:{psnr:.2f} U:45.00 V:45.00 SSIM Y:{ssim:.5f}\n"
    )


def test_probes_are_read_per_encoder_and_ranked_to_their_crfs(tmp_path: Path) -> None:
    report = tmp_path / "probe.log"
    encoders = {"0x1": (38.0, 0.95), "0x2": (50.0, 0.99), "0x3": (44.0, 0.97)}  # logged in any order
    lines = [_frame(a, n, p, s) for n in range(25) for a, (p, s) in encoders.items()]
    report.write_text("".join(["noise\n", *lines]))
    files = [tmp_path / f"p{c}.h264" for c in PROBE_CRFS]
    for f, size in zip(files, (30_000, 10_000, 4_000), strict=True):
        f.write_bytes(b"\0" * size)
    points = read_probes(report, files, 99.0, 25.0)  # 25 frames at 25 fps: 1 s
    assert [(p.crf, p.psnr, p.ssim) for p in points] == [
        (PROBE_CRFS[0], 50.0, 0.99),
        (PROBE_CRFS[1], 44.0, 0.97),
        (PROBE_CRFS[2], 38.0, 0.95),
    ]
    assert [p.kbps for p in points] == [240.0, 80.0, 32.0]


def test_a_probe_log_missing_an_encoder_fails_the_analysis(tmp_path: Path) -> None:
    report = tmp_path / "probe.log"
    report.write_text(_frame("0x1", 0, 40.0, 0.9))
    with pytest.raises(ValueError, match="probe encoders"):
        read_probes(report, [tmp_path / "a", tmp_path / "b", tmp_path / "c"], 1.0, 25.0)


def test_scene_changes_are_read_from_scdets_lines(tmp_path: Path) -> None:
    report = tmp_path / "scenes.log"
    report.write_text(
        "[Parsed_scdet_1 @ 0x5] lavfi.scd.score: 35.120, lavfi.scd.time: 12.48\n"
        "frame=  100 fps=0.0\n"
        "[Parsed_scdet_1 @ 0x5] lavfi.scd.score: 20.000, lavfi.scd.time: 3\n"
    )
    assert read_scenes(report) == [3.0, 12.48]
    assert read_scenes(tmp_path / "missing.log") == []
