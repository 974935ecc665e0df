"""Errors name the field they concern: the REST error body's ``field`` and the GraphQL error's
``extensions.field``, raised where the field is known (mpr_common.jobs, the API's services, Litestar's
validation), the detail left as it was."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpr_api.automation.rules import Condition, Rule, check_rule
from mpr_api.automation.templates import Template, TemplateError, check_template, render_output_key
from mpr_api.http.field_errors import FieldConflict, FieldError, graphql_name
from mpr_common.events import JOB_KINDS, JobRequested
from mpr_common.jobs import JobRequestError, normalize_job
from tests.unit.api.inprocess import in_process_api

JOB_FIELDS = frozenset(f.name for f in msgspec.structs.fields(JobRequested))


@pytest.fixture
def api():
    with in_process_api(None) as (client, nc, _):
        yield client, nc


def test_a_refused_job_names_its_field_and_keeps_its_detail(api):
    client, nc = api
    cases = [
        ({"kind": "transcode", "source_key": "a.mp4", "output_key": "a.txt"}, "output_key"),
        ({"kind": "trim", "source_key": "a.mp4", "start": 5, "end": 2}, "end"),
        ({"kind": "trim", "source_key": "a.mp4"}, "start"),
        ({"kind": "transcode", "source_key": "notes.txt"}, "source_key"),
        ({"kind": "audio", "source_key": "a.mp4", "preset": "nope"}, "preset"),
        ({"kind": "audio", "source_key": "a.mp4", "storyboard": True}, "storyboard"),
        ({"kind": "package", "source_key": "a.mp4", "executor": "lambda"}, "executor"),
        ({"source_key": "a.mp4"}, "kind"),
    ]
    for body, field in cases:
        r = client.post("/api/jobs", json=body)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.json())
    r = client.post("/api/jobs", json={"kind": "transcode", "source_key": "a.mp4", "output_key": "a.txt"})
    assert r.json() == {
        "status_code": 400,
        "detail": "output_key must end with .mp4 for preset 'h264-720p'",
        "field": "output_key",
    }
    assert nc.js.published == []


def test_litestars_validation_names_the_field_it_refused(api):
    client, _ = api
    r = client.post("/api/jobs", json={"kind": "transcode", "source_key": "a.mp4", "start": -1})
    assert r.status_code == 400 and r.json()["field"] == "start"
    assert r.json()["detail"].startswith("Validation failed for POST /api/jobs: start: ")
    assert client.get("/api/jobs", params={"status": "lost"}).json()["field"] == "status"
    whole = client.post("/api/jobs", json=[1])  # the body as a whole: no field
    assert whole.status_code == 400 and "field" not in whole.json()
    assert "field" not in client.get("/api/jobs/unknown").json()  # a 404 concerns no field


def test_graphql_errors_name_the_field_as_graphql_spells_it(api):
    client, _ = api

    def error(query: str) -> dict:
        return client.post("/graphql", json={"query": query}).json()["errors"][0]

    bad_output = error(
        'mutation { submitJob(job: {kind: transcode, sourceKey: "a.mp4", outputKey: "a.txt"}) { id } }'
    )
    assert bad_output["extensions"] == {"code": "BAD_REQUEST", "field": "outputKey"}
    assert bad_output["message"] == "output_key must end with .mp4 for preset 'h264-720p'"
    bounds = error('mutation { submitJob(job: {kind: transcode, sourceKey: "a.mp4", start: -1}) { id } }')
    assert bounds["extensions"]["field"] == "start"
    assert error('{ jobs(status: "lost") { id } }')["extensions"]["field"] == "status"
    assert "field" not in error('mutation { cancelJob(id: "unknown") { id } }')["extensions"]


def test_field_errors_say_the_field_in_both_spellings():
    e = FieldError("source_key: a key is not empty", "source_key")
    assert (e.code, e.detail, e.extra, e.graphql_extensions) == (
        400,
        "source_key: a key is not empty",
        {"field": "source_key"},
        {"field": "sourceKey"},
    )
    assert FieldConflict("taken", "output_key").code == 409
    assert FieldError("the request as a whole").extra == {} == FieldError("x").graphql_extensions
    assert [graphql_name(n) for n in ("kind", "output_keys", "upload_id")] == [
        "kind",
        "outputKeys",
        "uploadId",
    ]


def test_templates_and_rules_name_their_field():
    with pytest.raises(TemplateError) as exc:
        render_output_key("{nope}.mp4", "a.mp4", "j", "transcode", None)
    assert exc.value.field == "output_key"
    with pytest.raises(TemplateError) as exc:
        check_template(Template(kind="audio", preset="nope"))
    assert exc.value.field == "preset"
    with pytest.raises(TemplateError) as exc:
        check_rule(Rule(template="t", glob="[a"))
    assert exc.value.field == "glob"
    with pytest.raises(TemplateError) as exc:
        check_rule(Rule(template="t", conditions=[Condition(field="width", op=">", value="big")]))
    assert exc.value.field == "conditions"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    job=st.builds(
        JobRequested,
        job_id=st.one_of(st.just("j-1"), st.text(max_size=70)),
        kind=st.sampled_from([*JOB_KINDS, "nope"]),
        source_key=st.sampled_from(["a.mp4", "in/b.mov", "notes.txt", "../x.mp4", ""]),
        output_key=st.one_of(st.none(), st.sampled_from(["o/a.mp4", "o/a.txt", "o/a.m3u8", "/abs.mp4"])),
        preset=st.one_of(st.none(), st.sampled_from(["h264-720p", "aac-128k", "abr-h264", "nope"])),
        start=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        end=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        loudnorm=st.booleans(),
        storyboard=st.booleans(),
        parent_id=st.one_of(st.none(), st.just("p-1")),
        rendition=st.one_of(st.none(), st.sampled_from(["720p", "audio", "nope"])),
        source_bucket=st.one_of(st.none(), st.sampled_from(["in-bucket", "X"])),
        output_bucket=st.one_of(st.none(), st.sampled_from(["out-bucket", "X"])),
    )
)
def test_every_refused_job_request_names_one_of_its_fields(job):
    try:
        normalize_job(job)
    except JobRequestError as exc:
        assert exc.field in JOB_FIELDS, (str(exc), exc.field)
