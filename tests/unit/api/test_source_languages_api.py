"""A job naming a language its source lacks: refused at once with a 400 naming the field, the language
missing and those the source has, when the catalog has probed the source (its audio and subtitle
streams; the subtitle files beside it listed from the bucket); accepted, and left to fail with the
reason when planned, when the catalog has no probe of it. In process, on fakes."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.settings import ApiSettings
from mpr_common.events import AssetView, AudioStream, JobRequested, MediaInfo, SubtitleFile, SubtitleStream
from mpr_common.request_errors import JobRequestError
from mpr_common.source_languages import check_source_languages
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

INFO = MediaInfo(
    duration=6.0,
    video_codec="h264",
    audio_codec="aac",
    audio_streams=[AudioStream(index=0, codec="aac", language="en"), AudioStream(index=1, language="fr")],
    subtitle_streams=[SubtitleStream(index=0, codec="subrip", language="en")],
)


def asset(key: str, info: MediaInfo | None, status="ok", updated=1.0, removed=False) -> AssetView:
    return AssetView(id=f"{key}-{updated}", bucket="mpr-media-in", key=key, etag="e", size=1,
                     media_type="video", probe_status=status, probe_error=None, info=info,
                     removed=removed, created_at=0.0, updated_at=updated)  # fmt: skip


class SidecarListing:
    """The one S3 call a sidecar listing makes, over a fixed set of keys."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_paginator(self, _name):
        def paginate(Bucket, Prefix, PaginationConfig):  # noqa: N803 (boto3's names)
            return [{"Contents": [{"Key": k} for k in self.keys if k.startswith(Prefix)]}]

        return SimpleNamespace(paginate=paginate)


@contextmanager
def api(assets: list[AssetView], keys: list[str]):
    nc = FakeNats(assets=assets)
    settings = ApiSettings(tokens=frozenset())
    state = services(settings, nc, FakeKV(), public_s3=None, owners_kv=FakeKV(), s3=SidecarListing(keys))
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as client:
        yield client, nc


KEYS = ["films/talk.mkv", "films/talk.fr.vtt", "films/talkative.de.srt"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"kind": "package", "audio_languages": ["en", "ja"]}, "audio_languages", ["in ja", "en, fr"]),
        ({"kind": "package", "subtitle_languages": ["de"]}, "subtitle_languages", ["in de", "en, fr"]),
        ({"kind": "transcode", "preset": "h264-480p", "burn_subtitles": "es"}, "burn_subtitles", ["in es", "en, fr"]),
    ],
)  # fmt: skip
def test_a_language_the_probed_source_lacks_is_a_400_naming_it_and_those_it_has(body, field, words):
    with api([asset("films/talk.mkv", INFO)], KEYS) as (client, nc):
        r = client.post("/api/jobs", json={"source_key": "films/talk.mkv", **body})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field and all(w in r.json()["detail"] for w in words), r.json()
        assert nc.js.published == []  # nothing queued


def test_languages_the_source_or_its_sidecars_have_are_accepted():
    with api([asset("films/talk.mkv", INFO)], KEYS) as (client, nc):
        for body in (
            {"kind": "package", "audio_languages": ["fr"], "subtitle_languages": ["fr", "en"]},
            {"kind": "transcode", "preset": "h264-480p", "burn_subtitles": "fr"},  # the sidecar
            {"kind": "package", "subtitle_languages": ["it"], "subtitles": [{"key": "x/t.srt", "language": "it"}]},
        ):  # fmt: skip
            r = client.post("/api/jobs", json={"source_key": "films/talk.mkv", **body})
            assert r.status_code == 202, r.text
        assert len(nc.js.published) == 3


@pytest.mark.parametrize(
    "assets",
    [
        [],  # not scanned
        [asset("films/talk.mkv", None, status="pending")],  # not probed yet
        [asset("films/talk.mkv", INFO, removed=True)],
        [asset("films/talk.mkv", INFO), asset("films/talk.mkv", None, status="pending", updated=2.0)],  # replaced
        [asset("films/talk.mkv.old", INFO)],  # another key with that prefix
    ],
)  # fmt: skip
def test_without_a_probe_of_the_source_the_job_is_queued_and_fails_when_planned(assets):
    with api(assets, KEYS) as (client, nc):
        r = client.post(
            "/api/jobs", json={"kind": "package", "source_key": "films/talk.mkv", "audio_languages": ["ja"]}
        )
        assert r.status_code == 202, r.text
        assert len(nc.js.published) == 1


def test_subtitle_languages_are_left_to_the_job_when_the_sidecars_are_not_known():
    job = JobRequested(
        job_id="j", kind="package", source_key="t.mkv", subtitle_languages=["de"], burn_subtitles="de"
    )
    check_source_languages(job, INFO, None)  # a sidecar may have it
    with pytest.raises(JobRequestError, match="subtitle_languages: the source has no subtitles in de"):
        check_source_languages(job, INFO, [SubtitleFile(key="t.fr.vtt", language="fr")])
