"""Presigned uploads into the input bucket on a real S3 server (moto): the plan of parts, one PUT, a
multipart upload completed from S3's own list of parts, and what is refused."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_api.console.uploads import (
    MAX_PARTS,
    MIN_PART_BYTES,
    STAGING_PREFIX,
    ReceivedPart,
    UploadPlan,
    UploadService,
    checked_upload_key,
    missing_parts,
    plan_upload,
    staging_key,
)
from mpr_api.settings import ApiSettings
from mpr_common import storage
from mpr_common.errors import BadRequest, Conflict, NotFound
from mpr_common.keys import is_media_key
from tests import moto_s3

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)

MiB = 1024 * 1024


# --- the plan (pure) ---------------------------------------------------------------------------
def test_small_files_go_in_one_put():
    plan = plan_upload(3 * MiB, 16 * MiB, 10**12)
    assert not plan.multipart and plan.parts == 0 and plan.part_size == 3 * MiB
    assert not plan_upload(0, 16 * MiB, 10**12).multipart


def test_large_files_go_in_parts_of_the_configured_size_the_last_one_shorter():
    plan = plan_upload(40 * MiB + 7, 16 * MiB, 10**12)
    assert plan == UploadPlan(size=40 * MiB + 7, part_size=16 * MiB, parts=3)
    assert [plan.part_length(n) for n in (1, 2, 3)] == [16 * MiB, 16 * MiB, 8 * MiB + 7]
    with pytest.raises(ValueError):
        plan.part_length(4)


def test_parts_are_never_smaller_than_s3_allows():
    plan = plan_upload(12 * MiB, 1 * MiB, 10**12)
    assert plan.part_size == MIN_PART_BYTES and plan.parts == 3


def test_parts_grow_so_that_a_huge_file_fits_in_ten_thousand():
    size = 500 * 1024**3  # 500 GiB at 16 MiB parts would be 32,000 parts
    plan = plan_upload(size, 16 * MiB, 10**13)
    assert plan.parts <= MAX_PARTS and plan.part_size % MiB == 0
    assert plan.part_size * plan.parts >= size > plan.part_size * (plan.parts - 1)


def test_sizes_beyond_the_limit_or_negative_are_refused():
    with pytest.raises(BadRequest, match="size"):
        plan_upload(11, 16 * MiB, 10)
    with pytest.raises(BadRequest, match="size"):
        plan_upload(-1, 16 * MiB, 10)


def test_only_valid_media_keys_are_uploaded_to():
    assert checked_upload_key("in/clip.mp4") == "in/clip.mp4"
    for bad in ("../x.mp4", "/abs.mp4", "notes.txt", "a\x00b.mp4", ""):
        with pytest.raises(BadRequest, match="key"):
            checked_upload_key(bad)


def test_missing_or_wrong_parts_are_named():
    plan = plan_upload(12 * MiB, 5 * MiB, 10**12)  # parts of 5, 5 and 2 MiB
    whole = [ReceivedPart(1, 5 * MiB, "a"), ReceivedPart(2, 5 * MiB, "b"), ReceivedPart(3, 2 * MiB, "c")]
    assert missing_parts(plan, whole) is None
    assert "2" in (missing_parts(plan, [whole[0], whole[2]]) or "")
    short = [whole[0], ReceivedPart(2, 4 * MiB, "b"), whole[2]]
    assert "size" in (missing_parts(plan, short) or "")
    assert "beyond" in (missing_parts(plan, [*whole, ReceivedPart(4, 1, "d")]) or "")


# --- on S3 -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")  # no state beyond its clients: every test uploads under keys of its own
def uploads(s3_settings):
    settings = ApiSettings(s3=s3_settings, upload_part_bytes=5 * MiB)
    client = storage.get_s3_client(s3_settings)
    return UploadService(settings, client, storage.make_public_client(s3_settings))


def stored(uploads, key) -> bytes:
    return uploads.s3.get_object(Bucket=uploads.bucket, Key=key)["Body"].read()


async def test_a_small_file_is_one_presigned_put(uploads):
    data = os.urandom(1000)
    target = await uploads.start("up/small.mp4", len(data))
    assert target["parts"] == 0 and target["content_type"] == "video/mp4"
    assert "X-Amz-Signature" in target["url"] and target["upload_id"]
    async with httpx.AsyncClient() as http:
        r = await http.put(target["url"], content=data, headers={"Content-Type": target["content_type"]})
    assert r.status_code == 200, r.text
    await uploads.complete("up/small.mp4", len(data), target["upload_id"])
    assert stored(uploads, "up/small.mp4") == data
    head = uploads.s3.head_object(Bucket=uploads.bucket, Key="up/small.mp4")
    assert head["ContentType"] == "video/mp4"
    with pytest.raises(BadRequest, match="upload_id"):
        await uploads.complete("up/small.mp4", len(data), None)


async def test_a_large_file_goes_in_parts_and_is_completed_from_what_s3_received(uploads):
    data = os.urandom(11 * MiB + 123)
    key = "up/large.mkv"
    target = await uploads.start(key, len(data))
    assert target["parts"] == 3 and target["part_size"] == 5 * MiB and target["upload_id"]
    parts = uploads.part_urls(key, target["upload_id"], len(data), [1, 2, 3])
    assert [p["size"] for p in parts] == [5 * MiB, 5 * MiB, MiB + 123]
    async with httpx.AsyncClient() as http:
        for p in parts:
            start = (p["number"] - 1) * target["part_size"]
            r = await http.put(p["url"], content=data[start : start + p["size"]])
            assert r.status_code == 200, r.text
    await uploads.complete(key, len(data), target["upload_id"])
    assert stored(uploads, key) == data


async def test_completing_with_a_part_missing_is_refused_and_the_upload_can_be_aborted(uploads):
    data = os.urandom(11 * MiB)
    key = "up/partial.mp4"
    target = await uploads.start(key, len(data))
    [first] = uploads.part_urls(key, target["upload_id"], len(data), [1])
    async with httpx.AsyncClient() as http:
        await http.put(first["url"], content=data[: first["size"]])
    with pytest.raises(Conflict, match=r"part\(s\) 2, 3"):
        await uploads.complete(key, len(data), target["upload_id"])
    await uploads.abort(key, target["upload_id"])
    with pytest.raises(NotFound):
        await uploads.complete(key, len(data), target["upload_id"])


async def test_an_existing_object_is_never_replaced(uploads):
    uploads.s3.put_object(Bucket=uploads.bucket, Key="up/taken.mp4", Body=b"x")
    with pytest.raises(Conflict, match="already exists"):
        await uploads.start("up/taken.mp4", 10)


async def test_part_urls_are_asked_for_within_the_plan(uploads):
    with pytest.raises(BadRequest, match="one PUT"):
        uploads.part_urls("up/a.mp4", "id", 10, [1])
    with pytest.raises(BadRequest, match="outside"):
        uploads.part_urls("up/a.mp4", "id", 11 * MiB, [4])
    with pytest.raises(BadRequest, match="numbers"):
        uploads.part_urls("up/a.mp4", "id", 11 * MiB, list(range(1, 102)))


# --- a presigned URL is bound to the plan, and never replaces an object ---------------------------
def signed_headers(url: str) -> set[str]:
    return set(parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";"))


def objects(uploads) -> set[str]:
    return {o["Key"] for o in uploads.s3.list_objects_v2(Bucket=uploads.bucket).get("Contents", [])}


async def test_a_put_of_another_size_than_planned_is_refused_and_discarded(uploads):
    key = "bound/small.mp4"
    target = await uploads.start(key, 100)
    assert "content-length" in signed_headers(target["url"])  # S3 refuses another length
    async with httpx.AsyncClient() as http:  # moto does not check signed headers: the API does
        r = await http.put(target["url"], content=b"x" * (5 * MiB), headers={"Content-Type": "video/mp4"})
    assert r.status_code == 200
    assert key not in objects(uploads)  # staged, not in place
    with pytest.raises(Conflict, match="not the 100 planned"):
        await uploads.complete(key, 100, target["upload_id"])
    assert key not in objects(uploads) and staging_key(target["upload_id"]) not in objects(uploads)


async def test_a_put_url_used_again_replaces_nothing(uploads):
    key = "bound/once.mp4"
    first, second = os.urandom(1000), os.urandom(1000)
    target = await uploads.start(key, len(first))
    async with httpx.AsyncClient() as http:
        assert (await http.put(target["url"], content=first)).status_code == 200
        await uploads.complete(key, len(first), target["upload_id"])
        assert staging_key(target["upload_id"]) not in objects(uploads)
        # the same URL, within its hour, with other bytes of the same size
        assert (await http.put(target["url"], content=second)).status_code == 200
    assert stored(uploads, key) == first
    with pytest.raises(Conflict, match="already exists"):
        await uploads.complete(key, len(second), target["upload_id"])
    assert stored(uploads, key) == first
    assert staging_key(target["upload_id"]) not in objects(uploads)


async def test_completing_a_single_put_nothing_was_sent_for_is_a_404(uploads):
    target = await uploads.start("bound/never.mp4", 10)
    with pytest.raises(NotFound, match="nothing was uploaded"):
        await uploads.complete("bound/never.mp4", 10, target["upload_id"])


async def test_part_urls_sign_each_parts_length(uploads):
    key = "bound/parts.mp4"
    target = await uploads.start(key, 11 * MiB)
    for part in uploads.part_urls(key, target["upload_id"], 11 * MiB, [1, 3]):
        assert "content-length" in signed_headers(part["url"])


async def test_a_multipart_upload_does_not_replace_a_key_written_meanwhile(uploads):
    data = os.urandom(11 * MiB)
    key = "bound/raced.mp4"
    target = await uploads.start(key, len(data))
    parts = uploads.part_urls(key, target["upload_id"], len(data), [1, 2, 3])
    async with httpx.AsyncClient() as http:
        for p in parts:
            start = (p["number"] - 1) * target["part_size"]
            assert (await http.put(p["url"], content=data[start : start + p["size"]])).status_code == 200
    uploads.s3.put_object(Bucket=uploads.bucket, Key=key, Body=b"someone else's")
    with pytest.raises(Conflict, match="written meanwhile"):
        await uploads.complete(key, len(data), target["upload_id"])
    assert stored(uploads, key) == b"someone else's"


def test_staged_uploads_are_no_media_a_scan_would_register():
    assert not is_media_key(staging_key("0" * 32)) and staging_key("0" * 32).startswith(STAGING_PREFIX)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_only_an_id_this_api_makes_names_a_staged_upload(upload_id):
    ok = len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)
    try:
        key = staging_key(upload_id)
    except BadRequest as exc:
        assert not ok and "upload_id" in exc.detail
    else:
        assert ok and key == STAGING_PREFIX + upload_id
