"""Per-title ladders on the test stack: a still picture and a noise-filled one (4 s, 854x480, no sound, so
a package's bytes are its video's; the still one 8 s) each packaged with the fixed ladder and with ``"ladder":
"per-title"``. The still one's per-title package takes fewer bytes than its fixed one with every rung
within 0.5 dB of the target (chunked: every chunk encoded with its rung's choice); the noisy one's top
rung is no worse than the fixed one's; the two ladders differ (the still one at higher CRFs); the ladder
and why are on the job (REST and GraphQL)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system

# 5 fps: what the ladders are chosen and checked by is the picture (still or noisy), not its frame rate
SIZE, RATE, SECONDS = "854x480", 5, 4
# twice as long: two chunks of 4 s (chunks are cut on the 4 s segments)
STILL = f"color=c=0x203050:size={SIZE}:rate={RATE}:duration={2 * SECONDS},drawbox=x=80:y=60:w=500:h=50:color=orange:t=fill,drawgrid=w=107:h=60:color=white@0.5"
NOISY = f"testsrc2=size={SIZE}:rate={RATE}:duration={SECONDS},noise=alls=40:allf=t+u"
TARGET = 40.0


def _source(s3, folder: Path, name: str, graph: str) -> str:
    path = folder / f"{name}.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", graph, "-c:v", "libx264", "-preset", "ultrafast"]
        + ["-crf", "16", "-g", str(RATE), "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    key = f"per-title-{uuid.uuid4().hex[:6]}/{name}.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    return key


def _submit(api, key: str, **options) -> str:
    job_id = f"pt{uuid.uuid4().hex[:10]}"
    body = {"kind": "package", "source_key": key, "job_id": job_id, **options}
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return job_id


def test_per_title_ladders_of_a_still_and_a_noisy_source_differ_as_described(api, s3, tmp_path):
    still, noisy = _source(s3, tmp_path, "still", STILL), _source(s3, tmp_path, "noisy", NOISY)
    per_title = {"ladder": "per-title", "quality_target": {"psnr": TARGET}}
    ids = {
        "still-fixed": _submit(api, still),
        # chunked: each chunk is encoded with its rung's choice
        "still-pt": _submit(api, still, chunk_seconds=SECONDS, **per_title),
        "noisy-fixed": _submit(api, noisy),
        "noisy-pt": _submit(api, noisy, **per_title),
    }
    jobs = {name: wait_job(api, job_id, timeout=300)["job"] for name, job_id in ids.items()}
    for name, job in jobs.items():
        assert job["status"] == "completed", (name, job)

    def psnr(name: str) -> dict[str, float]:
        return {r: q["psnr"]["mean"] for r, q in jobs[name]["rendition_quality"].items()}

    # the still picture: fewer bytes than the fixed ladder, every rung at the target (within 0.5 dB)
    assert jobs["still-pt"]["output_size"] < jobs["still-fixed"]["output_size"], jobs
    assert psnr("still-pt") and all(v >= TARGET - 0.5 for v in psnr("still-pt").values()), psnr("still-pt")
    assert any("-c0001" in c for c in jobs["still-pt"]["children"]), jobs["still-pt"]["children"]  # chunked
    # the noisy one: its top rung no worse than the fixed ladder's
    top = max(psnr("noisy-pt"), key=lambda r: int(r.rstrip("p")))
    assert top == "480p" and psnr("noisy-pt")[top] >= psnr("noisy-fixed")[top] - 0.05, (
        psnr("noisy-pt"),
        psnr("noisy-fixed"),
    )

    # the ladder and why, on the job
    ladders = {n: jobs[n]["chosen_ladder"] for n in ("still-pt", "noisy-pt")}
    assert jobs["still-fixed"]["chosen_ladder"] is None
    for ladder in ladders.values():
        assert ladder["metric"] == "psnr" and ladder["target"] == TARGET
        assert [r["name"] for r in ladder["rungs"]] == ["480p", "360p"] and ladder["rungs"][-1]["kept"]
        assert all(r["reason"] and len(r["probes"]) == 3 for r in ladder["rungs"])
        assert len(ladder["samples"]) == 3 and ladder["elapsed"] > 0
    kept = {n: {r["name"]: r for r in ladders[n]["rungs"] if r["kept"]} for n in ladders}
    assert set(psnr("still-pt")) == set(kept["still-pt"]) and set(psnr("noisy-pt")) == set(kept["noisy-pt"])
    # differ as described: the still one's top rung at a higher CRF, far fewer bits predicted
    s_top, n_top = ladders["still-pt"]["rungs"][0], ladders["noisy-pt"]["rungs"][0]
    assert s_top["crf"] > n_top["crf"] and s_top["predicted_kbps"] * 5 < n_top["predicted_kbps"], ladders

    query = f'{{ job(id: "{ids["still-pt"]}") {{ chosenLadder {{ metric target spread rungs {{ name kept crf reason }} }} }} }}'
    r = api.post("/graphql", json={"query": query})
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    g = r.json()["data"]["job"]["chosenLadder"]
    assert g["metric"] == "psnr" and [x["crf"] for x in g["rungs"]] == [
        x["crf"] for x in ladders["still-pt"]["rungs"]
    ]


def test_a_vmaf_target_without_libvmaf_and_a_bad_target_are_refused(api):
    body = {"kind": "package", "source_key": "any.mp4", "ladder": "per-title"}
    r = api.post("/api/jobs", json={**body, "quality_target": {"vmaf": 93}})
    assert r.status_code == 400 and "quality_target" in r.text and "vmaf" in r.text, r.text
    r = api.post("/api/jobs", json={**body, "quality_target": {"psnr": 90}})
    assert r.status_code == 400 and "quality_target" in r.text, r.text
