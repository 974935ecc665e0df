"""Templates and rules over REST and GraphQL, in process (httpx over ASGI, in the test's event loop) over a real
nats-server with the buckets mpr-setup makes, and a stand-in catalog answering asset lists: CRUD with
revisions and optimistic concurrency, 400/404/409, jobs made from templates, and dry runs."""

from __future__ import annotations

import time

import httpx
import nats
import pytest

from mpr_api.app import create_app, services
from mpr_api.automation.rules import Firing, firing_id, rule_job_id
from mpr_api.automation.service import AutomationService
from mpr_api.automation.store import FiringStore, RuleStore, TemplateStore
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.catalog_requests import AssetsPage, ListAssets
from mpr_common.codec import decode, encode
from mpr_common.events import AssetView, JobRequested, MediaInfo
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack.servers import NatsServer

pytestmark = pytest.mark.system

TOKEN = "t0ken"
SETTINGS = ApiSettings(tokens=frozenset({TOKEN}))
BUCKET = SETTINGS.s3.bucket_in
THUMBS = {"kind": "thumbnail", "preset": "png-640", "start": 1.0, "description": "a poster frame"}
HD = MediaInfo(
    format_name="mov,mp4", duration=12.0, video_codec="h264", audio_codec="aac", width=640, height=360
)
SMALL = MediaInfo(format_name="matroska,webm", duration=6.0, video_codec="h264", width=320, height=240)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("js")).start()
    yield server.url
    server.stop()


class Catalog:
    """Answers the catalog's asset list from ``assets``, at most ``page`` a time (as if its pages were
    shorter than asked), so that callers must page through."""

    def __init__(self, page: int = 2) -> None:
        self.assets: list[AssetView] = []
        self.page = page

    def add(self, key: str, info: MediaInfo | None, status: str = "ok", etag: str = "e1") -> AssetView:
        a = AssetView(
            id=f"{len(self.assets):032x}",
            bucket=BUCKET,
            key=key,
            etag=etag,
            size=1000,
            media_type="video",
            probe_status=status,
            probe_error="invalid data" if status == "error" else None,
            info=info,
            removed=False,
            created_at=0.0,
            updated_at=0.0,
        )
        self.assets.append(a)
        return a

    async def answer(self, msg) -> None:
        q = decode(msg.data, ListAssets)
        found = sorted((a for a in self.assets if a.key.startswith(q.prefix or "")), key=lambda a: a.key)
        page = found[q.offset : q.offset + min(q.limit, self.page)]
        await msg.respond(encode(AssetsPage(assets=page, total=len(found))))


@pytest.fixture
async def api(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for bucket in (s.TEMPLATES_KV, s.RULES_KV, s.RULE_FIRINGS_KV, s.OUTPUT_OWNERS_KV):
        try:
            await js.delete_key_value(bucket)
        except Exception:
            pass
    try:
        await js.delete_stream(s.JOBS_STREAM)
    except Exception:
        pass
    await setup_jetstream(js, NatsSettings(url=nats_url), JobQueueSettings())
    catalog = Catalog()
    sub = await nc.subscribe(s.CATALOG_ASSETS_LIST, cb=catalog.answer)
    state = services(
        SETTINGS, nc, await js.key_value(s.JOB_STATE_KV), None, await js.key_value(s.OUTPUT_OWNERS_KV)
    )
    state["automation"] = AutomationService(
        SETTINGS, TemplateStore(js), RuleStore(js), FiringStore(js), state["assets"]
    )
    # The app in this test's event loop (Litestar's test clients run it in a thread of their own, where
    # this NATS connection cannot be used); its lifespan would only copy ``state`` in.
    app = create_app(SETTINGS, state=state)
    app.state.update(state)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://mpr.local", headers=headers) as client:
        yield client, js, catalog
    await sub.unsubscribe()
    await nc.close()


async def requested(js) -> list[JobRequested]:
    info = await js.stream_info(s.JOBS_STREAM)
    return [
        decode((await js.get_msg(s.JOBS_STREAM, seq)).data, JobRequested)
        for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1)
    ]


async def test_templates_have_revisions_and_optimistic_concurrency(api):
    client, _, _ = api
    r = await client.put("/api/templates/thumbs", json=THUMBS)
    assert r.status_code == 201, r.text
    first = r.json()["revision"]
    assert r.headers["etag"] == f'"{first}"' and r.json()["template"]["preset"] == "png-640"
    r = await client.put(
        "/api/templates/thumbs", json={**THUMBS, "preset": "jpeg-320"}, headers={"If-Match": f'"{first}"'}
    )
    assert r.status_code == 200
    second = r.json()["revision"]
    assert second > first
    stale = await client.put("/api/templates/thumbs", json=THUMBS, headers={"If-Match": f'"{first}"'})
    assert stale.status_code == 409 and f"latest revision is {second}" in stale.json()["detail"]
    exists = await client.put("/api/templates/thumbs", json=THUMBS, headers={"If-None-Match": "*"})
    assert exists.status_code == 409
    assert (await client.get("/api/templates/thumbs")).json()["template"]["preset"] == "jpeg-320"
    old = await client.get("/api/templates/thumbs", params={"revision": first})
    assert old.status_code == 200 and old.json()["template"]["preset"] == "png-640"
    await client.put("/api/templates/other", json={"kind": "audio"})
    history = (await client.get("/api/templates/thumbs/revisions")).json()
    assert [r["revision"] for r in history["revisions"]] == [first, second]  # not "other"'s
    wrong = await client.get("/api/templates/thumbs", params={"revision": second + 1})  # "other"'s revision
    assert wrong.status_code == 404
    listed = (await client.get("/api/templates")).json()["items"]
    assert [(t["name"], t["revision"]) for t in listed] == [("other", second + 1), ("thumbs", second)]


async def test_template_errors(api):
    client, _, _ = api
    r = await client.put("/api/templates/bad", json={"kind": "transcode", "preset": "aac-128k"})
    assert r.status_code == 400 and "is for audio jobs" in r.json()["detail"]
    r = await client.put("/api/templates/bad", json={"kind": "transcode", "output_key": "{nope}.mp4"})
    assert r.status_code == 400 and "unknown placeholder" in r.json()["detail"]
    r = await client.put("/api/templates/bad", json={"kind": "transcode", "colour": "red"})
    assert r.status_code == 400
    assert (await client.put("/api/templates/a@b", json=THUMBS)).status_code in (400, 404)
    assert (await client.get("/api/templates/missing")).status_code == 404
    assert (await client.delete("/api/templates/missing")).status_code == 404
    bad_tag = await client.put("/api/templates/x", json=THUMBS, headers={"If-Match": "soon"})
    assert bad_tag.status_code == 400
    r = await client.put("/api/templates/x", json=THUMBS, headers={"If-Match": '"7"'})
    assert r.status_code == 409 and "does not exist" in r.json()["detail"]


async def test_a_template_used_by_a_rule_is_not_deleted_and_a_deleted_one_keeps_its_history(api):
    client, _, _ = api
    rev = (await client.put("/api/templates/thumbs", json=THUMBS)).json()["revision"]
    rule = (await client.post("/api/rules", json={"template": "thumbs", "prefix": "auto/"})).json()
    r = await client.delete("/api/templates/thumbs")
    assert r.status_code == 409 and rule["id"] in r.json()["detail"]
    assert (await client.delete(f"/api/rules/{rule['id']}")).status_code == 204
    assert (await client.get(f"/api/rules/{rule['id']}")).status_code == 404
    assert (
        await client.delete("/api/templates/thumbs", headers={"If-Match": f'"{rev + 5}"'})
    ).status_code == 409
    assert (await client.delete("/api/templates/thumbs")).status_code == 204
    assert (await client.get("/api/templates/thumbs")).status_code == 404
    kept = await client.get("/api/templates/thumbs", params={"revision": rev})
    assert kept.status_code == 200  # what jobs made from it name stays readable
    history = (await client.get("/api/templates/thumbs/revisions")).json()["revisions"]
    assert [h["deleted"] for h in history] == [False, True]
    assert (await client.get("/api/templates")).json()["items"] == []
    again = await client.put("/api/templates/thumbs", json=THUMBS, headers={"If-None-Match": "*"})
    assert again.status_code == 201  # a deleted name may be created again


async def test_rules_crud_and_their_errors(api):
    client, _, _ = api
    r = await client.post("/api/rules", json={"template": "thumbs", "prefix": "auto/"})
    assert r.status_code == 400 and "template" in r.json()["detail"]  # no such template yet
    await client.put("/api/templates/thumbs", json=THUMBS)
    tall = {"field": "height", "op": ">=", "value": 360}
    body = {"template": "thumbs", "prefix": "auto/", "conditions": [tall], "name": "posters"}
    r = await client.post("/api/rules", json={**body, "id": "posters"})
    assert r.status_code == 201 and r.json()["id"] == "posters" and r.json()["rule"]["conditions"] == [tall]
    assert (await client.post("/api/rules", json={**body, "id": "posters"})).status_code == 409
    generated = (await client.post("/api/rules", json=body)).json()
    assert len(generated["id"]) == 32
    for bad, reason in (
        ({**body, "conditions": [{"field": "height", "op": ">=", "value": "tall"}]}, "is a number"),
        ({**body, "glob": "a[b"}, "glob"),
        ({**body, "bucket": "someone-elses"}, "not one jobs may read"),
        ({**body, "template_revision": 999}, "no revision 999"),
        ({**body, "conditions": [{"field": "colour", "op": "==", "value": "red"}]}, "colour"),
    ):
        r = await client.put("/api/rules/posters", json=bad)
        assert r.status_code == 400 and reason in r.json()["detail"], (bad, r.text)
    revision = (await client.get("/api/rules/posters")).json()["revision"]
    r = await client.put(
        "/api/rules/posters", json={**body, "enabled": False}, headers={"If-Match": f'"{revision}"'}
    )
    assert r.status_code == 200 and r.json()["rule"]["enabled"] is False
    stale = await client.put("/api/rules/posters", json=body, headers={"If-Match": f'"{revision}"'})
    assert stale.status_code == 409
    assert {x["id"] for x in (await client.get("/api/rules")).json()["items"]} == {"posters", generated["id"]}
    assert (await client.get("/api/rules/no-such-rule")).status_code == 404
    assert (await client.get("/api/rules/bad%20id")).status_code == 400


async def test_jobs_made_from_a_template(api):
    client, js, _ = api
    rev = (await client.put("/api/templates/thumbs", json={**THUMBS, "priority": "normal"})).json()[
        "revision"
    ]
    r = await client.post(
        "/api/jobs", json={"kind": "thumbnail", "source_key": "a/b.mp4", "template": "thumbs"}
    )
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert (job["preset"], job["start"], job["template"]) == ("png-640", 1.0, f"thumbs@{rev}")
    # the request's own fields win; a pinned revision is what it says
    await client.put("/api/templates/thumbs", json={**THUMBS, "preset": "jpeg-1280"})
    r = await client.post(
        "/api/jobs",
        json={"kind": "thumbnail", "source_key": "a/c.mp4", "template": f"thumbs@{rev}", "start": 3},
    )
    assert (r.json()["job"]["preset"], r.json()["job"]["start"]) == ("png-640", 3.0)
    [first, second] = await requested(js)
    assert first.template == f"thumbs@{rev}" and first.preset == "png-640" and second.start == 3.0
    # the template's output key pattern, rendered for the job, belongs to it
    fixed = {"kind": "audio", "preset": "mp3-192k", "output_key": "mp3/{stem}.mp3"}
    other = (await client.put("/api/templates/fixed", json=fixed)).json()["revision"]
    r = await client.post(
        "/api/jobs", json={"kind": "audio", "source_key": "x/song.mp4", "template": "fixed"}
    )
    assert r.status_code == 202 and r.json()["job"]["output_key"] == "mp3/song.mp3"
    r = await client.post(
        "/api/jobs", json={"kind": "audio", "source_key": "y/song.mp4", "template": "fixed"}
    )
    assert r.status_code == 409 and "belongs to job" in r.json()["detail"]
    for body, reason in (
        ({"kind": "thumbnail", "source_key": "a.mp4", "template": "nope"}, "not found"),
        ({"kind": "thumbnail", "source_key": "a.mp4", "template": f"thumbs@{other}"}, f"no revision {other}"),
        ({"kind": "thumbnail", "source_key": "a.mp4", "template": "th/umbs"}, "template"),
        ({"kind": "transcode", "source_key": "a.mp4", "template": "thumbs"}, "is for thumbnail jobs"),
    ):
        r = await client.post("/api/jobs", json=body)
        assert r.status_code == 400 and reason in r.json()["detail"], (body, r.text)
    assert len(await requested(js)) == 3


async def test_dry_runs_list_what_a_rule_would_start_and_what_it_started(api):
    client, js, catalog = api
    await client.put("/api/templates/thumbs", json=THUMBS)
    tall = {"field": "height", "op": ">=", "value": 360}
    rule = {"template": "thumbs", "prefix": "auto/", "conditions": [tall]}
    await client.post("/api/rules", json={**rule, "id": "posters", "enabled": False})
    for i in range(3):
        catalog.add(f"auto/hd-{i}.mp4", HD)
    catalog.add("auto/small.mkv", SMALL)
    catalog.add("auto/broken.mp4", None, status="error")
    catalog.add("auto/new.mp4", None, status="pending")
    catalog.add("manual/hd.mp4", HD)
    fired = Firing(
        rule="posters",
        bucket=BUCKET,
        key="auto/hd-1.mp4",
        etag="e1",
        job_id=rule_job_id("posters", BUCKET, "auto/hd-1.mp4", "e1"),
        state="started",
        at=time.time(),
    )
    await FiringStore(js).claim(firing_id("posters", BUCKET, "auto/hd-1.mp4", "e1"), fired)

    r = await client.post("/api/rules/posters/dry-run")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["examined"], out["matched"], out["would_start"], out["already_fired"]) == (6, 3, 2, 1)
    assert out["waiting_for_probe"] == 1 and out["template"].startswith("thumbs@") and not out["truncated"]
    items = {i["key"]: i for i in out["items"]}
    assert set(items) == {"auto/hd-0.mp4", "auto/hd-1.mp4", "auto/hd-2.mp4"}
    assert items["auto/hd-1.mp4"]["fired"] and items["auto/hd-1.mp4"]["firing"] == "started"
    hd0 = items["auto/hd-0.mp4"]
    assert not hd0["fired"] and hd0["job_id"] == rule_job_id("posters", BUCKET, "auto/hd-0.mp4", "e1")
    assert (hd0["kind"], hd0["preset"], hd0["output_key"]) == (
        "thumbnail",
        "png-640",
        f"auto/hd-0/{hd0['job_id']}/png-640.png",
    )
    assert await requested(js) == []  # a dry run starts nothing

    short = (await client.post("/api/rules/posters/dry-run", params={"limit": 1})).json()
    assert len(short["items"]) == 1 and short["truncated"] and short["matched"] == 3
    # an unsaved rule (no conditions: the unreadable object matches too); with ?id= its firings are marked
    draft = (await client.post("/api/rules/dry-run", json={"template": "thumbs", "prefix": "auto/"})).json()
    assert draft["rule_id"] is None and draft["matched"] == 5 and draft["already_fired"] == 0
    assert all(i["job_id"] is None for i in draft["items"])
    marked = (await client.post("/api/rules/dry-run", params={"id": "posters"}, json=rule)).json()
    assert marked["already_fired"] == 1
    assert (await client.post("/api/rules/nope/dry-run")).status_code == 404
    bad = await client.post("/api/rules/dry-run", json={"template": "missing"})
    assert bad.status_code == 400


async def test_graphql_templates_rules_and_dry_runs(api):
    client, _, catalog = api
    catalog.add("auto/hd.mp4", HD)

    async def gql(query: str) -> dict:
        return (await client.post("/graphql", json={"query": query})).json()

    put = await gql(
        'mutation { putJobTemplate(name: "thumbs", template: {kind: "thumbnail", preset: "png-640", start: 1})'
        " { name revision preset start } }"
    )
    rev = put["data"]["putJobTemplate"]["revision"]
    assert put["data"]["putJobTemplate"]["preset"] == "png-640"
    stale = await gql(
        f'mutation {{ putJobTemplate(name: "thumbs", expectedRevision: {rev + 9}, template: {{kind: "audio"}}) {{ name }} }}'
    )
    assert stale["errors"][0]["extensions"]["code"] == "CONFLICT"
    bad = await gql('mutation { putJobTemplate(name: "x", template: {kind: "trim"}) { name } }')
    assert bad["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    created = await gql(
        'mutation { createRule(id: "posters", rule: {template: "thumbs", prefix: "auto/",'
        ' conditions: [{field: "height", op: ">=", value: 360}]}) { id revision conditions { field op value } } }'
    )
    assert created["data"]["createRule"]["conditions"] == [{"field": "height", "op": ">=", "value": 360}]
    listed = await gql('{ rules { id template } jobTemplates { name } jobTemplate(name: "nope") { name } }')
    assert listed["data"] == {
        "rules": [{"id": "posters", "template": "thumbs"}],
        "jobTemplates": [{"name": "thumbs"}],
        "jobTemplate": None,
    }
    dry = await gql('{ ruleDryRun(id: "posters") { matched wouldStart items { key jobId fired } } }')
    assert (
        dry["data"]["ruleDryRun"]["matched"] == 1
        and dry["data"]["ruleDryRun"]["items"][0]["key"] == "auto/hd.mp4"
    )
    used = await gql('mutation { deleteJobTemplate(name: "thumbs") }')
    assert used["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert (await gql('mutation { deleteRule(id: "posters") }'))["data"]["deleteRule"] is True
    assert (await gql('mutation { deleteJobTemplate(name: "thumbs") }'))["data"]["deleteJobTemplate"] is True
