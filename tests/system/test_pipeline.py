"""Upload → scan → asset with metadata → jobs of every kind → outputs checked with ffprobe."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from mpr_common import subjects as s
from tests.media import make_video, probe
from tests.system.conftest import wait_for
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system


def upload(s3, media_dir, name: str, key: str, bucket: str = "mpr-media-in") -> str:
    s3.upload_file(str(media_dir / name), bucket, key)
    return key


def output_probe(api: httpx.Client, job: dict) -> dict:
    assert job["output_url"], job
    return probe(job["output_url"])


@pytest.fixture(scope="module")
def scanned(api, s3, media_dir) -> dict:
    """Three media files and one non-media file under a fresh prefix, then one scan."""
    prefix = f"flow-{uuid.uuid4().hex[:8]}/"
    keys = {
        "video": upload(s3, media_dir, "sample.mp4", f"{prefix}my video+1.mp4"),
        "mkv": upload(s3, media_dir, "clip.mkv", f"{prefix}sub/clip.MKV"),
        "audio": upload(s3, media_dir, "tone.flac", f"{prefix}tone.flac"),
    }
    s3.put_object(Bucket="mpr-media-in", Key=f"{prefix}readme.txt", Body=b"not media")
    r = api.post("/api/assets/scan", json={"prefix": prefix})
    assert r.status_code == 200, r.text
    return {"prefix": prefix, "keys": keys, "scan": r.json()}


def asset_for(api, key: str) -> dict:
    items = api.get("/api/assets", params={"prefix": key}).json()["items"]
    return next(a for a in items if a["key"] == key)


def test_scan_counts_media_only(scanned):
    scan = scanned["scan"]
    assert scan["found"] == 3
    assert scan["registered"] == 3
    assert scan["skipped"] == 0
    assert sorted(scan["files"]) == sorted(scanned["keys"].values())


def test_rescan_skips_known_objects(api, scanned):
    r = api.post("/api/assets/scan", json={"prefix": scanned["prefix"]}).json()
    assert (r["found"], r["registered"], r["skipped"]) == (3, 0, 3)


def test_graphql_scan_media_folder(api, s3, media_dir):
    prefix = f"gql-{uuid.uuid4().hex[:8]}/"
    upload(s3, media_dir, "sample.mp4", f"{prefix}a.mp4")
    q = {"query": f'mutation {{ scanMediaFolder(prefix: "{prefix}") {{ found registered skipped files }} }}'}
    r = api.post("/graphql", json=q)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["scanMediaFolder"] == {
        "found": 1,
        "registered": 1,
        "skipped": 0,
        "files": [f"{prefix}a.mp4"],
    }


def test_assets_get_ffprobe_metadata(api, scanned):
    def probed(key):
        a = asset_for(api, key)
        return a if a["probe_status"] != "pending" else None

    video = wait_for(lambda: probed(scanned["keys"]["video"]), what="video probe")
    assert video["probe_status"] == "ok", video
    info = video["info"]
    assert (info["width"], info["height"], info["video_codec"], info["audio_codec"]) == (
        640,
        360,
        "h264",
        "aac",
    )
    assert info["duration"] == pytest.approx(12.0, abs=0.1)
    assert info["fps"] == pytest.approx(25.0)
    assert video["media_type"] == "video"
    one = api.get(f"/api/assets/{video['id']}")
    assert one.status_code == 200 and one.json()["key"] == scanned["keys"]["video"]

    audio = wait_for(lambda: probed(scanned["keys"]["audio"]), what="audio probe")
    assert audio["info"]["audio_codec"] == "flac" and audio["info"].get("video_codec") is None
    assert audio["media_type"] == "audio"


def test_unknown_asset_is_404(api):
    r = api.get(f"/api/assets/{uuid.uuid4().hex}")
    assert r.status_code == 404 and "not found" in r.json()["detail"]


def submit(api, **body) -> dict:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    # Visible at once, before any worker touched it.
    now = api.get(f"/api/jobs/{job['id']}")
    assert now.status_code == 200, now.text
    assert now.json()["job"]["status"] in ("queued", "running", "completed")
    return job


def test_transcode_job(api, scanned):
    job = submit(api, kind="transcode", source_key=scanned["keys"]["video"], preset="h264-480p")
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    assert done["job"]["progress"] == 100
    out = output_probe(api, done)
    v = next(st for st in out["streams"] if st["codec_type"] == "video")
    assert (v["codec_name"], v["height"]) == ("h264", 360)  # never upscaled past the source's 360 lines
    assert float(out["format"]["duration"]) == pytest.approx(12.0, abs=0.2)
    assert any(st["codec_type"] == "audio" and st["codec_name"] == "aac" for st in out["streams"])


def test_trim_job_with_reencode_is_accurate(api, scanned):
    job = submit(
        api, kind="trim", source_key=scanned["keys"]["video"], start=3.0, end=7.5, preset="h264-480p"
    )
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    assert float(output_probe(api, done)["format"]["duration"]) == pytest.approx(4.5, abs=0.15)


def test_trim_job_is_frame_accurate_by_default(api, scanned):
    job = submit(api, kind="trim", source_key=scanned["keys"]["video"], start=2.3, end=6.1)
    assert job["preset"] == "accurate" and job["output_key"].endswith(".mp4")
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    out = output_probe(api, done)
    assert float(out["format"]["duration"]) == pytest.approx(3.8, abs=0.04 + 0.02)  # one frame at 25 fps
    assert {st["codec_name"] for st in out["streams"]} == {"h264", "aac"}  # the source's codecs, kept


def test_a_range_outside_the_source_fails_with_the_reason(api, scanned):
    body = {"kind": "trim", "source_key": scanned["keys"]["video"], "start": 100.0, "end": 110.0}
    r = api.post("/api/jobs", json=body)  # the source's length is known to the transcoder, which fails it
    assert r.status_code == 202, r.text
    done = wait_job(api, r.json()["job"]["id"])
    assert (done["job"]["status"], done["job"]["failure_reason"]) == ("failed", "invalid"), done
    assert "beyond the end of the source" in done["job"]["error"]


def test_trim_job_stream_copy(api, scanned):
    job = submit(api, kind="trim", source_key=scanned["keys"]["video"], start=2.0, end=6.0, preset="copy")
    assert job["preset"] == "copy" and job["output_key"].endswith(".mp4")
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    assert float(output_probe(api, done)["format"]["duration"]) == pytest.approx(
        4.0, abs=1.05
    )  # key frames 1 s apart


def test_thumbnail_job(api, scanned):
    job = submit(api, kind="thumbnail", source_key=scanned["keys"]["video"], start=1.0)
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    out = output_probe(api, done)
    (v,) = out["streams"]
    assert (v["codec_name"], v["width"], v["height"]) == ("mjpeg", 320, 180)


def test_audio_job(api, scanned):
    job = submit(api, kind="audio", source_key=scanned["keys"]["mkv"], preset="mp3-192k")
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    out = output_probe(api, done)
    assert [st["codec_name"] for st in out["streams"]] == ["mp3"]
    assert float(out["format"]["duration"]) == pytest.approx(6.0, abs=0.2)


def test_hls_job(api, s3, scanned):
    job = submit(api, kind="hls", source_key=scanned["keys"]["video"], preset="hls-480p")
    done = wait_job(api, job["id"])
    assert done["job"]["status"] == "completed", done
    keys = done["job"]["output_keys"]
    playlist_key = done["job"]["output_key"]
    assert playlist_key.endswith("index.m3u8") and keys[-1] == playlist_key
    segments = [k for k in keys if k.endswith(".ts")]
    assert len(segments) >= 3
    playlist = s3.get_object(Bucket="mpr-media-out", Key=playlist_key)["Body"].read().decode()
    assert "#EXT-X-ENDLIST" in playlist and all(k.rsplit("/", 1)[1] in playlist for k in segments)
    seg = probe(api.get(f"/media/out/{segments[0]}", follow_redirects=False).headers["location"])
    assert seg["format"]["format_name"] == "mpegts"


def test_progress_is_reported_while_running(stack, api, s3, tmp_path):
    """A longer transcode reports progress between 0 and 100 before it completes."""
    import asyncio

    import nats

    # VP9 of 12 s at 320x180: seconds of encoding (a quarter of the CPU the 640x360 sample takes)
    key = f"progress-{uuid.uuid4().hex[:8]}/small.mp4"
    s3.upload_file(str(make_video(tmp_path / "small.mp4", seconds=12, size="320x180")), "mpr-media-in", key)
    job_id = f"progress-{uuid.uuid4().hex[:8]}"
    seen: list[dict] = []

    async def watch():
        nc = await nats.connect(stack.nats.url)
        sub = await nc.subscribe(s.JOBS_ALL)
        r = api.post(
            "/api/jobs",
            json={
                "kind": "transcode",
                "source_key": key,
                "preset": "vp9-720p",
                "job_id": job_id,
            },
        )
        assert r.status_code == 202, r.text
        try:
            while True:
                msg = await sub.next_msg(timeout=120)
                ev = json.loads(msg.data)
                if ev.get("job_id") != job_id:
                    continue
                if msg.subject == s.JOB_PROGRESS:
                    seen.append(ev)
                elif msg.subject in (s.JOB_COMPLETED, s.JOB_FAILED):
                    break
        finally:
            await nc.close()

    asyncio.run(watch())
    done = wait_job(api, job_id)
    assert done["job"]["status"] == "completed"
    assert seen, "no progress events"
    assert all(0 <= e["progress"] <= 100 for e in seen)
    assert any(0 < e["progress"] < 100 for e in seen), seen
    times = [e["at"] for e in seen]
    assert len(times) >= 2
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 2.5


def test_duplicate_job_id_runs_once(api, scanned):
    job_id = f"dup-{uuid.uuid4().hex[:8]}"
    body = {"kind": "thumbnail", "source_key": scanned["keys"]["video"], "job_id": job_id}
    first = api.post("/api/jobs", json=body)
    second = api.post("/api/jobs", json=body)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["job"]["id"] == job_id
    done = wait_job(api, job_id)
    assert done["job"]["status"] == "completed" and done["job"]["attempts"] == 1


def test_job_list_and_filters(api, scanned):
    job = submit(api, kind="thumbnail", source_key=scanned["keys"]["video"])
    wait_job(api, job["id"])
    page = api.get("/api/jobs", params={"status": "completed", "limit": 500}).json()
    assert page["total"] >= 1 and all(j["job"]["status"] == "completed" for j in page["items"])
    assert job["id"] in {j["job"]["id"] for j in page["items"]}


def test_media_redirects_to_presigned_urls(api, scanned):
    key = scanned["keys"]["video"]
    r = api.get(f"/media/in/{key}", follow_redirects=False)
    assert r.status_code == 307
    with httpx.Client() as plain:
        body = plain.get(r.headers["location"], headers={"Range": "bytes=0-99"})
    assert body.status_code == 206 and len(body.content) == 100
    assert api.get("/media/in/../secret.mp4", follow_redirects=False).status_code in (400, 404)


def test_presets_and_openapi(api):
    presets = api.get("/api/presets").json()
    names = {p["name"] for p in presets}
    assert {"h264-720p", "copy", "jpeg-320", "aac-128k", "hls-720p"} <= names
    spec = api.get("/schema/openapi.json").json()
    for path in (
        "/api/assets/scan",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/presets",
    ):
        assert path in spec["paths"], path
