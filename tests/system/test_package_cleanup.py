"""A package owns its folder's manifest names (refused at submit when another job owns them), and a
package that fails or is cancelled leaves nothing behind: its files deleted, its claims released, once
and again harmlessly under redelivery. The transcoder's Packager on moto's S3 with in-memory KV buckets."""

from __future__ import annotations

import msgspec
import pytest
from botocore.exceptions import ClientError
from litestar.testing import TestClient

from mpr_api.app import create_app, services
from mpr_api.settings import ApiSettings
from mpr_common import storage
from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.content_keys import ContentKeys, KeyWrap
from mpr_common.events import JobCompleted, JobFailed, JobRequested, JobView, MediaInfo
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.jobstate import JobState
from mpr_common.outputs import OutputOwners
from mpr_common.packages import manifest_keys
from mpr_transcoder.kinds.package.children import PackageStore, plan_package
from mpr_transcoder.kinds.package.chord import Packager, child_files
from tests import moto_s3
from tests.fakes import FakeJetStream, FakeKV, FakeNats, RevisionKV

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)

TOKEN = "t0ken"
SD = MediaInfo(duration=8.0, video_codec="h264", width=854, height=480, audio_codec="aac")


# --- at submit ---------------------------------------------------------------------------------------
@pytest.fixture
def api():
    settings = ApiSettings(tokens=frozenset({TOKEN}))
    nc = FakeNats()
    owners_kv = FakeKV()
    app = create_app(settings, state=services(settings, nc, FakeKV(), public_s3=None, owners_kv=owners_kv))
    with TestClient(app, base_url="http://mpr.local") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, nc


def test_a_package_is_refused_a_folder_whose_manifests_another_package_owns(api):
    client, nc = api
    first = client.post(
        "/api/jobs", json={"kind": "package", "source_key": "a.mp4", "output_key": "shows/x/master.m3u8"}
    )
    assert first.status_code == 202, first.text
    # the same folder under another name of its own: its manifests would overwrite the first's
    for output_key in ("shows/x/other.m3u8", "shows/x/master.m3u8"):
        r = client.post(
            "/api/jobs", json={"kind": "package", "source_key": "b.mp4", "output_key": output_key}
        )
        assert r.status_code == 409, r.text
        assert "shows/x/master.m3u8" in r.json()["detail"] and first.json()["job"]["id"] in r.json()["detail"]
    # another job of another kind that took the name of a package's playlist keeps it too
    hls = client.post(
        "/api/jobs", json={"kind": "hls", "source_key": "c.mp4", "output_key": "shows/y/master.m3u8"}
    )
    assert hls.status_code == 202, hls.text
    r = client.post(
        "/api/jobs", json={"kind": "package", "source_key": "d.mp4", "output_key": "shows/y/p.m3u8"}
    )
    assert r.status_code == 409 and "shows/y/master.m3u8" in r.json()["detail"]
    assert len(nc.js.published) == 2  # the refused ones published nothing
    # and claimed nothing: the name the refused package asked for is free
    free = client.post(
        "/api/jobs", json={"kind": "hls", "source_key": "e.mp4", "output_key": "shows/y/p.m3u8"}
    )
    assert free.status_code == 202, free.text
    # its own folder, as often as it is submitted again
    nc.jobs[first.json()["job"]["id"]] = decode(encode(first.json()["job"]), JobView)
    again = client.post(
        "/api/jobs",
        json={
            "kind": "package",
            "source_key": "a.mp4",
            "job_id": first.json()["job"]["id"],
            "output_key": "shows/x/master.m3u8",
        },
    )
    assert again.status_code in (200, 202), again.text


# --- on failure ----------------------------------------------------------------------------------------
@pytest.fixture
def packager(s3_settings):
    s3 = storage.get_s3_client(s3_settings)
    js = FakeJetStream()
    owners_kv, states_kv = RevisionKV(), RevisionKV()
    p = Packager(
        js,
        s3,
        JobState(states_kv),
        PackageStore(RevisionKV()),
        s3_settings.bucket_out,
        "w1",
        owners=OutputOwners(owners_kv),
    )
    return p


def listing(p: Packager, prefix: str) -> set[str]:
    found = p.s3.list_objects_v2(Bucket=p.bucket_out, Prefix=prefix).get("Contents", [])
    return {o["Key"] for o in found}


def put(p: Packager, *keys: str) -> None:
    for key in keys:
        p.s3.put_object(Bucket=p.bucket_out, Key=key, Body=b"x")


async def written_children(p: Packager, package_id: str, folder: str):
    """A planned package whose children claimed their outputs and wrote their files, and beside them
    in the same folder a job of another kind with its own files."""
    package = normalize_job(
        JobRequested(
            job_id=package_id, kind="package", source_key="s.mp4", output_key=f"{folder}/master.m3u8"
        )
    )
    plan = await p.fan_out(package, SD, attempt=1)
    owners = await p.owners()
    for child in plan.children:
        assert await owners.claim(p.bucket_out, child.output_key, child.job_id) is None
        name = child.rendition
        put(
            p,
            child.output_key,
            f"{folder}/{name}_init.mp4",
            f"{folder}/{name}_00000.m4s",
            f"{folder}/{name}_00001.m4s",
        )
    # the neighbours: another job's HLS output, and a file that only looks like a rendition's
    assert await owners.claim(p.bucket_out, f"{folder}/clip.m3u8", "neighbour") is None
    assert await owners.claim(p.bucket_out, f"{folder}/480p_init.mp4", "squatter") is None
    put(p, f"{folder}/clip.m3u8", f"{folder}/neighbour_00000.ts", f"{folder}/sub/360p_00000.m4s")
    return plan


async def test_a_failed_child_deletes_what_its_package_wrote_and_releases_its_claims(packager):
    p = packager
    folder = "shows/ep1/pk1"
    plan = await written_children(p, "pk1", folder)
    first, *others = plan.children
    await p.job_state.completed(
        JobCompleted(job_id=others[0].job_id, output_key=others[0].output_key, output_bucket=p.bucket_out)
    )
    running = others[1]  # still encoding when its package fails
    await p.job_state.failed(first.job_id)  # as the worker records it before it reports the child
    await p.child_failed(first, "ffmpeg exited 1", "ffmpeg", attempt=3)

    assert listing(p, folder + "/") == {
        f"{folder}/clip.m3u8",
        f"{folder}/neighbour_00000.ts",
        f"{folder}/480p_init.mp4",  # another job's claim: not the package's to delete
        f"{folder}/sub/360p_00000.m4s",  # a folder below: not the package's folder
    }
    owners = await p.owners()
    for child in (first, others[0]):
        assert await owners.owner(p.bucket_out, child.output_key) is None
    # a running child keeps its claim until it ends: nobody else may write its playlist meanwhile
    assert await owners.owner(p.bucket_out, running.output_key) == running.job_id
    for key in manifest_keys(plan.package):
        assert await owners.owner(p.bucket_out, key) is None
    assert await owners.owner(p.bucket_out, f"{folder}/clip.m3u8") == "neighbour"
    assert await owners.owner(p.bucket_out, f"{folder}/480p_init.mp4") == "squatter"
    # the child that had completed lost its files: a retry of the package runs it again
    assert await p.job_state.get(others[0].job_id) == "failed"
    subjects = [subject for subject, _, _ in p.js.published if subject == s.JOB_FAILED]
    assert subjects == [s.JOB_FAILED]
    failed = decode(next(pl for sub, pl, _ in p.js.published if sub == s.JOB_FAILED), JobFailed)
    assert failed.job_id == "pk1" and failed.reason == "ffmpeg"

    # Redelivered, and a child still running stops and reports after the package ended: the segment
    # it uploaded meanwhile goes too, and nothing else changes.
    put(p, f"{folder}/{running.rendition}_00007.m4s", running.output_key)
    await p.child_failed(first, "ffmpeg exited 1", "ffmpeg", attempt=3)
    await p.job_state.cancelled(running.job_id)
    await p.child_failed(running, "cancelled by request", "cancelled", attempt=1)
    assert len(listing(p, folder + "/")) == 4
    assert await owners.owner(p.bucket_out, running.output_key) is None
    assert [sub for sub, _, _ in p.js.published].count(s.JOB_FAILED) == 1


async def test_a_child_that_completes_after_its_package_was_cancelled_leaves_nothing(packager):
    p = packager
    folder = "shows/ep2/pk2"
    plan = await written_children(p, "pk2", folder)
    await p.job_state.cancelled("pk2")  # POST /api/jobs/pk2/cancel
    last = plan.children[-1]
    await p.job_state.completed(
        JobCompleted(job_id=last.job_id, output_key=last.output_key, output_bucket=p.bucket_out)
    )
    assert await p.child_completed(last) is None
    left = listing(p, folder + "/")
    assert not any(k.endswith((".m4s", "master.m3u8", "manifest.mpd")) and "/sub/" not in k for k in left)
    assert f"{folder}/{last.rendition}.m3u8" not in left


async def test_a_failed_encrypted_package_takes_its_key_with_its_files_and_a_retry_makes_another(packager):
    p = packager
    p.content_keys = keys = ContentKeys(RevisionKV(), KeyWrap("key-secret"))
    job = JobRequested(job_id="pk5", kind="package", source_key="s.mp4", output_key="shows/ep5/pk5/master.m3u8",
                       encryption="aes-128")  # fmt: skip
    plan = await p.fan_out(normalize_job(job), SD, attempt=1)
    first = await keys.key("pk5")
    assert first is not None
    child = plan.children[0]
    await p.job_state.failed(child.job_id)
    await p.child_failed(child, "ffmpeg exited 1", "ffmpeg", attempt=1)
    assert await keys.record("pk5") is None  # the key of nothing kept is not kept either
    await p.child_failed(child, "ffmpeg exited 1", "ffmpeg", attempt=1)  # redelivered: no error
    await p.fan_out(normalize_job(msgspec.structs.replace(job, retry=1)), SD, attempt=1)
    again = await keys.key("pk5")
    assert again is not None and again != first


async def test_a_package_refused_its_manifests_is_not_planned(packager):
    p = packager
    owners = await p.owners()
    assert await owners.claim(p.bucket_out, "shows/ep3/pk3/manifest.mpd", "other") is None
    package = normalize_job(
        JobRequested(job_id="pk3", kind="package", source_key="s.mp4", output_key="shows/ep3/pk3/master.m3u8")
    )
    with pytest.raises(JobRequestError, match="belongs to job other"):
        await p.fan_out(package, SD, attempt=1)
    assert await p.store.get("pk3") is None and p.js.published == []


def test_each_child_names_only_its_own_files():
    package = normalize_job(JobRequested(job_id="pk", kind="package", source_key="s.mp4", storyboard=True))
    plan = plan_package(package, SD)
    names = {c.rendition or c.kind: child_files(c) for c in plan.children}
    main, others = names["360p"]
    assert main == "360p.m3u8"
    assert others.fullmatch("360p_init.mp4") and others.fullmatch("360p_00012.m4s")
    assert not others.fullmatch("3600p_00012.m4s") and not others.fullmatch("480p_00000.m4s")
    assert not others.fullmatch("360p_00012.m4s.bak") and not others.fullmatch("360p.m3u8")
    main, others = names["storyboard"]
    assert (
        main == "storyboard.vtt" and others.fullmatch("storyboard_000.jpg") and others.fullmatch("poster.jpg")
    )
    assert not others.fullmatch("storyboard.vtt")


async def test_storage_that_refuses_deleting_keeps_the_files_and_their_claims(packager):
    p = packager
    folder = "shows/ep4/pk4"
    plan = await written_children(p, "pk4", folder)
    real = p.s3

    class NoDelete:
        def __getattr__(self, name):
            return getattr(real, name)

        def delete_objects(self, **kw):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObjects")

    p.s3 = NoDelete()
    await p.job_state.failed(plan.children[0].job_id)
    await p.child_failed(plan.children[0], "boom", "ffmpeg", attempt=1)  # the package fails all the same
    assert await p.job_state.get("pk4") == "failed"
    owners = await p.owners()
    assert await owners.owner(p.bucket_out, plan.children[0].output_key) == plan.children[0].job_id
    p.s3 = real
    await p.child_failed(plan.children[1], "cancelled", "cancelled", attempt=1)  # a later end deletes them
    assert await owners.owner(p.bucket_out, plan.children[0].output_key) is None
    assert not any(k.endswith(".m4s") for k in listing(p, folder + "/") if "/sub/" not in k)
