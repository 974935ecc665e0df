"""Rules fire on registered objects: every API replica pulls the one durable consumer ``rules`` on
MPR_ASSETS (the catalog's AssetRegistered, one per object version once probed — whether a scan or a
MinIO notification found it), so each registration is evaluated by one replica, however many run.

Once per (rule, bucket, key, etag): the rule's claim in ``mpr-rule-firings`` is created before its job
is published, and the job's id (also its Nats-Msg-Id) is derived from the same four values. A claim
left by a delivery that stopped before recording its publish is published again under the same id,
within the jobs stream's de-duplication window, so the job runs once whichever delivery got through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.errors import NotFound
from mpr_common.events import AssetRegistered, JobCompleted
from mpr_common.jobs import BucketPolicy, JobRequestError
from mpr_common.keeping import judged
from mpr_common.outputs import OutputOwners

from ..http.settings import HttpSettings
from .rules import Firing, Rule, firing_id, not_kept_version, rule_job, rule_job_id, rule_matches
from .store import FiringStore, RuleStore, Stored, TemplateStore
from .templates import TemplateError, template_ref

E = TypeVar("E", AssetRegistered, JobCompleted)

log = logging.getLogger("mpr.api.rules")

RULE_FIRINGS = Counter(
    "mpr_api_rule_firings_total",
    "Rule matches on registered objects, by outcome (started, duplicate, refused, template_missing)",
    ["outcome"],
)
# A claim older than this whose publish was never recorded is not published again: past the jobs
# stream's duplicate window (3600 s) a second publish could start a second job.
REPUBLISH_WINDOW = 3000.0
RETRY_DELAY = 2.0


class RuleEngine:
    def __init__(
        self,
        settings: HttpSettings,
        js: JetStreamContext,
        rules: RuleStore,
        templates: TemplateStore,
        firings: FiringStore,
        owners: OutputOwners,
    ) -> None:
        self.js = js
        self.rules = rules
        self.templates = templates
        self.firings = firings
        self.owners = owners
        self.bucket_in = settings.s3.bucket_in
        self.bucket_out = settings.s3.bucket_out
        self.policy = BucketPolicy.of(settings.s3)

    async def handle(self, msgs: list[Msg]) -> None:
        """A batch from the ``rules`` consumer (registered objects)."""
        await self._settle(msgs, AssetRegistered, list, self.on_registered, lambda a: f"{a.bucket}/{a.key}")

    async def _settle(
        self,
        msgs: list[Msg],
        kind: type[E],
        chosen: Callable[[list[Stored[Rule]]], list[Stored[Rule]]],
        act: Callable[[E, list[Stored[Rule]]], Awaitable[object]],
        name: Callable[[E], str],
    ) -> None:
        """Each message of a batch settled on its own, against the rules (those ``chosen``) as they were
        when the batch arrived: one read of the rules bucket per batch. A message that is not a ``kind``
        is acked (it never will be); one whose rules failed is redelivered."""
        try:
            rules = chosen(await self.rules.current())
        except Exception:
            log.exception(
                "rules could not be read; %d %s message(s) will be redelivered", len(msgs), kind.__name__
            )
            for msg in msgs:
                await msg.nak(delay=RETRY_DELAY)
            return
        for msg in msgs:
            try:
                event = decode(msg.data, kind)
            except (DecodeError, ValidationError) as exc:
                log.warning("not a %s on %s: %s", kind.__name__, msg.subject, exc)
                await msg.ack()
                continue
            try:
                await act(event, rules)
            except Exception:
                log.exception("rules on %s failed; will be redelivered", name(event))
                await msg.nak(delay=RETRY_DELAY)
                continue
            await msg.ack()
            await asyncio.sleep(0)  # every rule's glob over one key, then others get the loop

    async def on_registered(
        self, asset: AssetRegistered, rules: list[Stored[Rule]] | None = None
    ) -> dict[str, str]:
        """Fire every enabled rule the object matches; returns rule id → outcome."""
        outcomes = {}
        for stored in rules if rules is not None else await self.rules.current():
            rule = stored.value
            if (
                rule.enabled
                and rule.on == "object.registered"
                and rule_matches(rule, self.bucket_in, asset.bucket, asset.key, asset.info, asset.size)
            ):
                outcome = await self.fire(stored, asset)
                RULE_FIRINGS.labels(outcome).inc()
                outcomes[stored.key] = outcome
        return outcomes

    async def handle_jobs(self, msgs: list[Msg]) -> None:
        """A batch from the ``rules-jobs`` consumer (job completions): rules on job.not_kept fire on
        those whose output was not kept; the others are acked at once."""
        await self._settle(msgs, JobCompleted, _not_kept_rules, self.on_not_kept, lambda d: f"job {d.job_id}")

    async def on_not_kept(
        self, done: JobCompleted, rules: list[Stored[Rule]] | None = None
    ) -> dict[str, str]:
        """Fire every enabled rule on job.not_kept that the source of ``done`` matches, when its output
        was not kept; returns rule id → outcome."""
        keep = done.keep
        if done.outcome != "not_kept" or keep is None or not keep.source_key:
            return {}
        bucket = keep.source_bucket or self.bucket_in
        outcomes = {}
        for stored in rules if rules is not None else await self.rules.current():
            rule = stored.value
            if (
                rule.enabled
                and rule.on == "job.not_kept"
                and rule_matches(rule, self.bucket_in, bucket, keep.source_key, None)
            ):
                version = not_kept_version(done.job_id, done.retry)
                outcome = await self._fire(stored, bucket, keep.source_key, version)
                RULE_FIRINGS.labels(outcome).inc()
                outcomes[stored.key] = outcome
        return outcomes

    async def fire(self, stored: Stored[Rule], asset: AssetRegistered) -> str:
        return await self._fire(stored, asset.bucket, asset.key, asset.etag)

    async def _fire(self, stored: Stored[Rule], bucket: str, key: str, etag: str) -> str:
        """Start the rule's job on ``bucket/key`` once per ``etag`` (an object's version, or a run of a
        job not kept: :func:`.rules.not_kept_version`)."""
        rule_id, rule = stored.key, stored.value
        try:
            template = await self.templates.get(rule.template, rule.template_revision)
        except NotFound as exc:  # nothing is claimed: the object is evaluated again if registered again
            log.warning("rule %s matched %s but its template is missing: %s", rule_id, key, exc)
            return "template_missing"
        fid = firing_id(rule_id, bucket, key, etag)
        firing = Firing(
            rule=rule_id,
            bucket=bucket,
            key=key,
            etag=etag,
            job_id=rule_job_id(rule_id, bucket, key, etag),
            template=template_ref(template.key, template.revision),
            at=time.time(),
        )
        try:
            job = rule_job(
                rule_id,
                rule,
                template.value,
                template.revision,
                bucket=bucket,
                key=key,
                etag=etag,
                default_bucket=self.bucket_in,
            )
            self.policy.check(job)
            if rule.on == "job.not_kept" and judged(job):  # its own job could be not kept: a loop
                raise TemplateError(
                    "a rule on job.not_kept starts a job that is always kept: its template "
                    "must not set keep_if, min_psnr or min_ssim"
                )
        except (TemplateError, JobRequestError) as exc:
            refused = msgspec.structs.replace(firing, state="refused", error=str(exc))
            _, existing = await self.firings.claim(fid, refused)
            if existing is None:
                log.warning("rule %s refused %s: %s", rule_id, key, exc)
                return "refused"
            return "duplicate"
        revision, existing = await self.firings.claim(fid, firing)
        if existing is not None:
            if existing.state != "claimed" or time.time() - existing.at > REPUBLISH_WINDOW:
                return "duplicate"
            firing = existing  # an earlier delivery stopped between its claim and its publish
        if template.value.output_key is not None:  # a pattern may name another job's output
            assert job.output_key is not None
            owner = await self.owners.claim(job.output_bucket or self.bucket_out, job.output_key, job.job_id)
            if owner is not None:
                error = f"output_key {job.output_key!r} belongs to job {owner}"
                await self.firings.mark(
                    fid, msgspec.structs.replace(firing, state="refused", error=error), revision
                )
                log.warning("rule %s refused %s: %s", rule_id, key, error)
                return "refused"
        ack = await publish_event(self.js, s.requested_subject(job.priority), job, msg_id=job.job_id)
        await self.firings.mark(fid, msgspec.structs.replace(firing, state="started"), revision)
        if ack.duplicate:  # another delivery of the same registration published it first
            return "duplicate"
        log.info("rule %s started job %s for %s", rule_id, job.job_id, key, extra={"job_id": job.job_id})
        return "started"


def _not_kept_rules(rules: list[Stored[Rule]]) -> list[Stored[Rule]]:
    return [r for r in rules if r.value.enabled and r.value.on == "job.not_kept"]
