"""watermark and preview through the API in process: REST and GraphQL take them and publish the
normalised job, a wrong value is a 400 naming its field, templates carry both into the jobs made from
them (and GraphQL shows them), and the OpenAPI document describes them."""

from __future__ import annotations

import msgspec
import pytest

from mpr_api.automation.graphql import JobTemplate
from mpr_api.automation.schemas import TemplateOut
from mpr_api.automation.templates import Template, TemplateError, check_template, job_from_template
from mpr_common.codec import decode
from mpr_common.events import JobRequested, PreviewOptions, Watermark
from mpr_common.jobs import normalize_job
from tests.unit.api.inprocess import in_process_api

LOGO = {"key": "brand/logo.png", "position": "bottom-right", "margin": 8, "opacity": 0.5}


@pytest.fixture
def api():
    with in_process_api(None) as (client, nc, _):
        yield client, nc


def published(nc) -> JobRequested:
    return decode(nc.js.published[-1][1], JobRequested)


def test_rest_takes_a_watermark_and_preview_options(api):
    client, nc = api
    r = client.post("/api/jobs", json={"kind": "package", "source_key": "a.mp4", "watermark": LOGO})
    assert r.status_code == 202, r.text
    assert published(nc).watermark == Watermark(**LOGO, width=0.15)
    r = client.post("/api/jobs", json={"kind": "preview", "source_key": "a.mp4", "output_key": "p/a.gif",
                                       "preview": {"clips": 4, "fps": 8}})  # fmt: skip
    assert r.status_code == 202, r.text
    assert published(nc).preview == PreviewOptions(clips=4, fps=8.0)


def test_a_wrong_watermark_or_preview_is_a_400_naming_its_field(api):
    client, nc = api
    cases = [
        ({"kind": "transcode", "watermark": {"key": "l.png", "opacity": 3}}, "watermark.opacity"),
        ({"kind": "transcode", "watermark": {"text": "x", "margin": 9999}}, "watermark.margin"),
        ({"kind": "transcode", "watermark": {"position": "top-left"}}, "watermark"),
        ({"kind": "audio", "watermark": {"text": "x"}}, "watermark"),
        ({"kind": "preview", "preview": {"width": 5000}}, "preview.width"),
        ({"kind": "preview", "output_key": "p/a.mp4"}, "output_key"),
    ]
    for body, field in cases:
        r = client.post("/api/jobs", json={"source_key": "a.mp4", **body})
        assert r.status_code == 400, (body, r.text)
        assert r.json().get("field", "").startswith(field.split(".")[0]), (body, r.json())
        assert field.split(".")[-1] in r.json()["detail"], (body, r.json())
    assert nc.js.published == []


def test_graphql_takes_a_watermark_and_preview_options(api):
    client, nc = api
    q = """mutation { submitJob(job: {kind: transcode, sourceKey: "a.mp4",
             watermark: {text: "© MPR", position: "top-left", size: 0.1}}) { id } }"""
    r = client.post("/graphql", json={"query": q})
    assert "errors" not in r.json(), r.json()
    assert published(nc).watermark == Watermark(text="© MPR", position="top-left", size=0.1)
    q = """mutation { submitJob(job: {kind: preview, sourceKey: "a.mp4", preview: {clips: 2}}) { id } }"""
    assert "errors" not in client.post("/graphql", json={"query": q}).json()
    assert published(nc).preview == PreviewOptions(clips=2)
    bad = """mutation { submitJob(job: {kind: transcode, sourceKey: "a.mp4", watermark: {text: "x", opacity: 2}})
             { id } }"""
    errors = client.post("/graphql", json={"query": bad}).json()["errors"]
    assert "opacity" in errors[0]["message"]


def test_templates_carry_a_watermark_and_preview_options():
    branded = msgspec.convert({"kind": "transcode", "watermark": LOGO}, Template)
    assert check_template(branded).watermark == Watermark(**LOGO, width=0.15)
    job = job_from_template(branded, "branded@1", source_key="a.mp4", job_id="j1")
    assert normalize_job(job).watermark == Watermark(**LOGO, width=0.15)
    # the request's own watermark wins over the template's
    mine = {"text": "mine"}
    job = job_from_template(branded, "branded@1", source_key="a.mp4", job_id="j2", given={"watermark": mine})
    assert normalize_job(job).watermark == Watermark(text="mine", size=0.05)
    with pytest.raises(TemplateError) as bad:
        check_template(
            msgspec.convert({"kind": "transcode", "watermark": {"text": "x", "size": 2}}, Template)
        )
    assert bad.value.field == "watermark.size"
    teaser = msgspec.convert({"kind": "preview", "preview": {"clips": 3}}, Template)
    assert check_template(teaser).preview == PreviewOptions(clips=3)
    # stored and read back as JSON, shown by GraphQL as JSON
    stored = msgspec.json.decode(msgspec.json.encode(teaser), type=Template)
    assert stored == teaser
    shown = JobTemplate.of(TemplateOut(name="teaser", revision=1, template=teaser))
    assert shown.preview == {"clips": 3, "clip_seconds": 1.0, "width": 320, "fps": 10.0}
    assert JobTemplate.of(TemplateOut(name="b", revision=1, template=branded)).watermark == LOGO


def test_openapi_describes_them(api):
    client, _ = api
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    watermark = next(v for k, v in schemas.items() if k.endswith("Watermark"))
    assert set(watermark["properties"]) >= {"key", "text", "position", "margin", "opacity", "width", "size"}
    preview = next(v for k, v in schemas.items() if k.endswith("PreviewOptions"))
    assert set(preview["properties"]) == {"clips", "clip_seconds", "width", "fps"}
    kinds = next(v for k, v in schemas.items() if k.endswith("JobCreate"))["properties"]
    assert "watermark" in kinds and "preview" in kinds


def test_graphql_shows_a_per_title_templates_ladder_and_target():
    per_title = msgspec.convert(
        {"kind": "package", "ladder": "per-title", "quality_target": {"psnr": 42}}, Template
    )
    shown = JobTemplate.of(TemplateOut(name="pt", revision=1, template=per_title))
    assert shown.ladder == "per-title" and shown.quality_target == {"psnr": 42.0}
