"""Rules on job.not_kept: a transcode whose output was not kept starts the rule's job on its source once
per run (a fallback), never for a kept output or for rules on registered objects; a rule on
job.not_kept takes no metadata conditions, no template that could itself be not kept, and no dry run."""

from __future__ import annotations

import json

import pytest

from mpr_api.automation.engine import RuleEngine
from mpr_api.automation.rules import Condition, Rule, check_rule, rule_job_id
from mpr_api.automation.service import AutomationService
from mpr_api.automation.store import Stored
from mpr_api.automation.templates import Template, TemplateError
from mpr_api.http.field_errors import FieldError
from mpr_api.settings import ApiSettings
from mpr_common.events import AssetRegistered, JobCompleted, JobRequested
from mpr_common.jobs import normalize_job
from mpr_common.keeping import decide
from tests.fakes import FakeJetStream

SOURCE = "shows/ep1.mp4"


class Templates:
    def __init__(self, **templates: Template) -> None:
        self.templates = templates

    async def get(self, name: str, revision: int | None = None) -> Stored[Template]:
        return Stored(name, 7, self.templates[name])


class Firings:
    def __init__(self) -> None:
        self.claims: dict = {}

    async def claim(self, fid, firing):
        if fid in self.claims:
            return 1, self.claims[fid]
        self.claims[fid] = firing
        return 1, None

    async def mark(self, fid, firing, revision):
        self.claims[fid] = firing


class Rules:
    def __init__(self, **rules: Rule) -> None:
        self.rules = [Stored(k, 1, r) for k, r in rules.items()]

    async def current(self):
        return self.rules


def not_kept(job_id: str = "t1", retry: int = 0, outcome: str = "not_kept") -> JobCompleted:
    req = normalize_job(JobRequested(job_id=job_id, kind="transcode", source_key=SOURCE, keep_if="smaller"))
    verdict = decide(
        req, source_size=100, source_seconds=1.0, output_size=200, output_seconds=1.0, quality=None
    )
    return JobCompleted(
        job_id=job_id, output_key=req.output_key or "", output_bucket="mpr-media-out", outcome=outcome,
        keep=verdict, retry=retry,
    )  # fmt: skip


def engine(**rules: Rule) -> tuple[RuleEngine, FakeJetStream, Firings]:
    js, firings = FakeJetStream(), Firings()
    templates = Templates(
        copy=Template(kind="transcode", preset="copy"),
        judged=Template(kind="transcode", keep_if="better"),
    )
    e = RuleEngine(ApiSettings(), js, Rules(**rules), templates, firings, owners=None)  # type: ignore[arg-type]
    return e, js, firings


async def test_a_not_kept_output_starts_the_rules_job_on_its_source_once_per_run():
    fallback = Rule(template="copy", on="job.not_kept", prefix="shows/")
    e, js, firings = engine(
        fallback=fallback,
        elsewhere=Rule(template="copy", on="job.not_kept", prefix="films/"),
        registered=Rule(template="copy"),  # fires on registered objects only
    )
    assert await e.on_not_kept(not_kept()) == {"fallback": "started"}
    (subject, payload, headers), *rest = js.published
    assert not rest and subject.startswith("mpr.jobs.requested")
    job = json.loads(payload)
    assert (job["source_key"], job["preset"], job["rule"], job["kind"]) == (
        SOURCE,
        "copy",
        "fallback",
        "transcode",
    )
    assert job["job_id"] == rule_job_id("fallback", "mpr-media-in", SOURCE, "job.not_kept:t1:0")
    assert headers["Nats-Msg-Id"] == job["job_id"]
    # the same run again (a redelivery): nothing more; its next run (a retry): once more
    assert await e.on_not_kept(not_kept()) == {"fallback": "duplicate"}
    assert await e.on_not_kept(not_kept(retry=1)) == {"fallback": "started"}
    assert len(js.published) == 2
    # a kept output, or a registered object, does not fire it
    assert await e.on_not_kept(not_kept("t2", outcome="kept")) == {}
    asset = AssetRegistered(asset_id="a", bucket="mpr-media-in", key=SOURCE, etag="e1")
    assert await e.on_registered(asset) == {"registered": "started"}


async def test_a_fallback_that_could_itself_be_not_kept_is_refused_never_looped():
    e, js, firings = engine(loop=Rule(template="judged", on="job.not_kept"))
    assert await e.on_not_kept(not_kept()) == {"loop": "refused"}
    assert js.published == []
    (firing,) = firings.claims.values()
    assert firing.state == "refused" and "keep_if" in (firing.error or "")


def test_a_rule_on_job_not_kept_takes_no_metadata_conditions():
    with pytest.raises(TemplateError) as refused:
        check_rule(
            Rule(template="copy", on="job.not_kept", conditions=[Condition(field="height", op=">", value=1)])
        )
    assert refused.value.field == "conditions"
    check_rule(Rule(template="copy", on="job.not_kept", glob="**/*.mp4"))


async def test_the_api_refuses_a_judged_fallback_template_and_a_dry_run_of_a_job_rule():
    e, _, firings = engine()
    service = AutomationService(ApiSettings(), e.templates, Rules(), firings, assets=None)  # type: ignore[arg-type]
    with pytest.raises(FieldError) as refused:
        await service.dry_run(Rule(template="copy", on="job.not_kept"))
    assert refused.value.field == "on"
    with pytest.raises(FieldError) as refused:
        await service._check_rule(Rule(template="judged", on="job.not_kept"))
    assert refused.value.field == "template" and "keep_if" in str(refused.value.detail)
    assert (await service._check_rule(Rule(template="copy", on="job.not_kept"))).key == "copy"
    assert (await service._check_rule(Rule(template="judged"))).key == "judged"  # on objects: any template
