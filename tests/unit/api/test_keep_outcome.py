"""A job whose output was not kept (keep_if), downstream of its job.completed: the catalog's row, the
REST and GraphQL views (no output link), the webhooks' CloudEvent; and the options on submit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mpr_api.automation.templates import Template, TemplateError, check_template, templated_fields
from mpr_api.webhooks.cloudevents import cloud_event, job_occurrence, read_job_event
from mpr_catalog.job_events import fold
from mpr_catalog.repository import job_view
from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobCompleted, JobRequested, JobView
from mpr_common.jobs import normalize_job, outcome_id
from mpr_common.keeping import decide
from tests.unit.api.inprocess import in_process_api

TOKEN = "t0ken"
REQ = normalize_job(
    JobRequested(job_id="j1", kind="transcode", source_key="show.mp4", keep_if="smaller", requested_at=1.0)
)
VERDICT = decide(
    REQ, source_size=300_000, source_seconds=1.0, output_size=412_000, output_seconds=1.0, quality=None
)
NOT_KEPT = JobCompleted(
    job_id="j1",
    output_key=REQ.output_key or "",
    output_bucket="mpr-media-out",
    output_keys=[],
    worker="w1",
    at=5.0,
    outcome="not_kept",
    keep=VERDICT,
)


def _row_view(completed: JobCompleted) -> JobView:
    """The job as the catalog keeps and shows it after its request and ``completed``."""
    rows: dict = {}
    fold(rows, [REQ, completed], now=6.0)
    row = rows["j1"]
    return job_view(SimpleNamespace(_mapping=row, **row))


def test_the_catalog_keeps_the_outcome_and_no_output_file():
    view = _row_view(NOT_KEPT)
    assert (view.status, view.outcome, view.output_keys, view.output_size) == (
        "completed",
        "not_kept",
        [],
        None,
    )
    assert view.keep == VERDICT and view.keep.detail == "output 412 kB/s > source 300 kB/s"
    assert view.output_key == REQ.output_key  # the key it owns, where nothing was written
    kept = _row_view(JobCompleted(job_id="j1", output_key="k.mp4", output_bucket="b", output_size=9))
    assert (kept.outcome, kept.keep, kept.output_keys, kept.output_size) == ("kept", None, ["k.mp4"], 9)


@pytest.fixture
def api():
    with in_process_api(TOKEN) as (client, nc, _):
        yield client, nc


def test_rest_and_graphql_state_the_outcome_without_an_output_link(api, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # presigning is local: any key signs
        monkeypatch.setenv(name, "test")
    client, nc = api
    nc.jobs["j1"] = _row_view(NOT_KEPT)
    job = client.get("/api/jobs/j1").json()
    assert job["output_url"] is None
    assert (job["job"]["status"], job["job"]["outcome"]) == ("completed", "not_kept")
    assert job["job"]["keep"]["reason"] == "larger"
    assert (job["job"]["keep"]["source_rate"], job["job"]["keep"]["output_rate"]) == (300000.0, 412000.0)
    query = '{ job(id: "j1") { status outcome outputUrl keep { keepIf kept reason detail sourceRate outputRate } } }'
    got = client.post("/graphql", json={"query": query}).json()["data"]["job"]
    assert got == {
        "status": "completed",
        "outcome": "not_kept",
        "outputUrl": None,
        "keep": {
            "keepIf": "smaller",
            "kept": False,
            "reason": "larger",
            "detail": "output 412 kB/s > source 300 kB/s",
            "sourceRate": 300000.0,
            "outputRate": 412000.0,
        },
    }
    nc.jobs["j1"] = _row_view(JobCompleted(job_id="j1", output_key="k.mp4", output_bucket="b"))
    assert client.get("/api/jobs/j1").json()["output_url"] is not None  # a kept one links its output


def test_submit_takes_the_options_and_refuses_bad_ones_by_field(api):
    client, nc = api
    r = client.post("/api/jobs", json={"kind": "transcode", "source_key": "a.mp4", "keep_if": "better"})
    assert r.status_code == 202, r.text
    published = [m for m in nc.js.published if m[0].startswith("mpr.jobs.requested")]
    assert json.loads(published[-1][1])["keep_if"] == "better"
    for body, field in (
        ({"kind": "transcode", "min_psnr": 101}, "min_psnr"),
        ({"kind": "transcode", "min_ssim": 0}, "min_ssim"),
        ({"kind": "package", "keep_if": "smaller"}, "keep_if"),
        ({"kind": "transcode", "preset": "vp9-720p", "min_ssim": 0.9}, "min_ssim"),
    ):
        r = client.post("/api/jobs", json={"source_key": "a.mp4", **body})
        assert (r.status_code, r.json().get("field")) == (400, field), r.text
    r = client.post("/api/jobs", json={"kind": "transcode", "source_key": "a.mp4", "keep_if": "bigger"})
    assert r.status_code == 400 and "keep_if" in r.text
    q = 'mutation { submitJob(job: {kind: transcode, sourceKey: "b.mp4", minPsnr: 30, keepIf: "smaller"}) { id } }'
    assert client.post("/graphql", json={"query": q}).json()["data"]["submitJob"]["id"]
    q = 'mutation { submitJob(job: {kind: transcode, sourceKey: "b.mp4", minPsnr: 300}) { id } }'
    err = client.post("/graphql", json={"query": q}).json()["errors"][0]
    assert err["extensions"]["field"] == "minPsnr"


async def test_webhooks_send_the_outcome_in_job_completed():
    type_, event = read_job_event(s.JOB_COMPLETED, encode(NOT_KEPT))
    assert type_ == "job.completed"

    async def lookup(job_id: str, seq: int) -> JobView:
        return _row_view(NOT_KEPT)

    occ = await job_occurrence(type_, event, outcome_id("completed", "j1", 0), 7, lookup)
    assert occ is not None
    data = json.loads(cloud_event(occ, "d" * 32))["data"]
    assert data["outcome"] == "not_kept" and data["output_keys"] == []
    assert data["keep"]["detail"] == "output 412 kB/s > source 300 kB/s"


def test_templates_carry_the_options_and_are_checked_as_jobs():
    template = Template(kind="transcode", keep_if="better", min_ssim=0.95)
    job = check_template(template)
    assert (job.keep_if, job.min_psnr, job.min_ssim) == ("better", None, 0.95)
    # a request's own values win over the template's
    fields = templated_fields(template, {"min_ssim": 0.9}, "a.mp4", "j")
    assert (fields["keep_if"], fields["min_ssim"]) == ("better", 0.9)
    with pytest.raises(TemplateError) as refused:
        check_template(Template(kind="package", keep_if="smaller"))
    assert refused.value.field == "keep_if"


def test_jobs_run_outside_the_transcoders_refuse_the_options(api):
    client, _ = api
    body = {"kind": "transcode", "source_key": "a.mp4", "executor": "lambda", "min_ssim": 0.9}
    r = client.post("/api/jobs", json=body)
    assert (r.status_code, r.json().get("field")) == (400, "min_ssim"), r.text
    assert client.post("/api/jobs", json={**body, "min_ssim": None}).status_code == 202
