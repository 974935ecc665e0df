"""Templates and rules as REST and GraphQL see them: validated writes with optimistic concurrency,
reads by revision, and dry runs of rules over the catalog's registered assets."""

from __future__ import annotations

import asyncio

import msgspec

from mpr_common.errors import Conflict, NotFound
from mpr_common.events import AssetView, new_id
from mpr_common.jobs import BucketPolicy, JobRequestError

from ..assets.service import AssetService
from ..http.field_errors import FieldError
from ..http.limits import MAX_PAGE
from ..http.settings import HttpSettings
from .rules import Rule, check_rule, firing_id, key_matches, rule_job, rule_job_id, rule_matches
from .schemas import DryRunItem, DryRunOut, RuleOut, TemplateHistory, TemplateOut, TemplateRevision
from .store import FiringStore, RuleStore, Stored, TemplateStore
from .templates import Template, TemplateError, check_template, template_ref

DRY_RUN_LIMIT = 100
DRY_RUN_SLICE = 100  # assets examined between two yields to the event loop
MAX_DRY_RUN_LIMIT = 1000


class AutomationService:
    def __init__(
        self,
        settings: HttpSettings,
        templates: TemplateStore,
        rules: RuleStore,
        firings: FiringStore,
        assets: AssetService,  # the catalog's asset list, paged through by dry runs
    ) -> None:
        self.templates = templates
        self.rules = rules
        self.firings = firings
        self.assets = assets
        self.bucket_in = settings.s3.bucket_in
        self.sources = BucketPolicy.of(settings.s3).sources

    # --- templates -------------------------------------------------------------------------------
    async def list_templates(self) -> list[TemplateOut]:
        return [_template_out(t) for t in await self.templates.entries()]

    async def get_template(self, name: str, revision: int | None = None) -> TemplateOut:
        return _template_out(await self.templates.get(name, revision))

    async def template_history(self, name: str) -> TemplateHistory:
        revisions = await self.templates.revisions(name)
        return TemplateHistory(
            name=name, revisions=[TemplateRevision(revision=r, deleted=d) for r, d in revisions]
        )

    async def put_template(
        self, name: str, template: Template, expected: int | None = None
    ) -> tuple[TemplateOut, bool]:
        """Create or update; 400 for a template that makes no valid job, 409 for a stale ``expected``."""
        try:
            check_template(template)
        except TemplateError as exc:
            raise FieldError(str(exc), exc.field) from None
        revision, created = await self.templates.put(name, template, expected)
        return TemplateOut(name=name, revision=revision, template=template), created

    async def delete_template(self, name: str, expected: int | None = None) -> None:
        """409 while a rule starts jobs from it: delete or change those rules first."""
        users = sorted(r.key for r in await self.rules.current() if r.value.template == name)
        if users:
            await self.templates.get(name)  # 404 first for a template that does not exist
            raise Conflict(f"template {name!r} is used by rule(s) {', '.join(users)}")
        await self.templates.delete(name, expected)

    # --- rules -----------------------------------------------------------------------------------
    async def list_rules(self) -> list[RuleOut]:
        return [_rule_out(r) for r in await self.rules.current()]

    async def get_rule(self, rule_id: str) -> RuleOut:
        return _rule_out(await self.rules.get(rule_id))

    async def put_rule(
        self, rule_id: str | None, rule: Rule, expected: int | None = None
    ) -> tuple[RuleOut, bool]:
        """Create (``rule_id`` None: a generated id) or update; 400 for a rule that cannot work."""
        await self._check_rule(rule)
        if rule_id is None:
            rule_id, expected = new_id(), 0
        revision, created = await self.rules.put(rule_id, rule, expected)
        return RuleOut(id=rule_id, revision=revision, rule=rule), created

    async def delete_rule(self, rule_id: str, expected: int | None = None) -> None:
        await self.rules.delete(rule_id, expected)

    async def _check_rule(self, rule: Rule) -> Stored[Template]:
        try:
            check_rule(rule)
        except TemplateError as exc:
            raise FieldError(str(exc), exc.field) from None
        bucket = rule.bucket or self.bucket_in
        if bucket not in self.sources:
            raise FieldError(f"bucket {bucket!r} is not one jobs may read", "bucket")
        try:
            template = await self.templates.get(rule.template, rule.template_revision)
        except NotFound as exc:
            raise FieldError(f"template: {exc.detail}", "template") from None
        if rule.on == "job.not_kept" and any(
            getattr(template.value, f) is not None for f in ("keep_if", "min_psnr", "min_ssim")
        ):
            raise FieldError(
                f"template: a rule on job.not_kept starts a job that is always kept, and {rule.template!r} "
                "sets keep_if, min_psnr or min_ssim",
                "template",
            )
        return template

    # --- dry runs --------------------------------------------------------------------------------
    async def dry_run_stored(self, rule_id: str, limit: int = DRY_RUN_LIMIT) -> DryRunOut:
        return await self.dry_run((await self.rules.get(rule_id)).value, rule_id, limit)

    async def dry_run(self, rule: Rule, rule_id: str | None = None, limit: int = DRY_RUN_LIMIT) -> DryRunOut:
        """The registered objects ``rule`` matches now and the jobs it would start for them, each
        marked when the rule (``rule_id``; an unsaved rule has none) already fired on it. Whether or
        not the rule is enabled: a dry run says what it would do once it is."""
        if rule.on != "object.registered":
            raise FieldError(
                "a dry run lists the registered objects a rule matches: a rule on job.not_kept fires on "
                "job completions",
                "on",
            )
        template = await self._check_rule(rule)
        out = DryRunOut(
            rule_id=rule_id,
            template=template_ref(template.key, template.revision),
            examined=0,
            matched=0,
            would_start=0,
            already_fired=0,
            waiting_for_probe=0,
            items=[],
        )
        bucket = rule.bucket or self.bucket_in
        async for asset in self._assets(rule.prefix):
            out.examined += 1
            if out.examined % DRY_RUN_SLICE == 0:
                await asyncio.sleep(0)  # a catalog page of long keys is many glob runs: share the loop
            if asset.bucket != bucket:
                continue
            if asset.probe_status == "pending":
                out.waiting_for_probe += key_matches(rule, asset.key)
                continue
            if not rule_matches(rule, self.bucket_in, asset.bucket, asset.key, asset.info, asset.size):
                continue
            out.matched += 1
            item = await self._item(rule, rule_id, template, asset)
            if item.fired:
                out.already_fired += 1
            else:
                out.would_start += 1
            if len(out.items) < limit:
                out.items.append(item)
            else:
                out.truncated = True
        return out

    async def _assets(self, prefix: str):
        """Every registered (not removed) asset under ``prefix``, a catalog page at a time."""
        offset = 0
        while True:
            page, total = await self.assets.list(MAX_PAGE, offset, prefix or None)
            for asset in page:
                yield asset
            offset += len(page)
            if not page or offset >= total:
                return

    async def _item(
        self, rule: Rule, rule_id: str | None, template: Stored[Template], asset: AssetView
    ) -> DryRunItem:
        named = rule_id or "dry-run"
        item = DryRunItem(
            asset_id=asset.id,
            bucket=asset.bucket,
            key=asset.key,
            etag=asset.etag,
            job_id=rule_job_id(rule_id, asset.bucket, asset.key, asset.etag) if rule_id else None,
            fired=False,
        )
        if rule_id is not None:
            firing = await self.firings.get(firing_id(rule_id, asset.bucket, asset.key, asset.etag))
            if firing is not None:
                item.fired, item.firing, item.error = True, firing.state, firing.error
        try:
            job = rule_job(
                named,
                rule,
                template.value,
                template.revision,
                bucket=asset.bucket,
                key=asset.key,
                etag=asset.etag,
                default_bucket=self.bucket_in,
            )
        except (TemplateError, JobRequestError) as exc:
            item.error = item.error or str(exc)
            return item
        item.kind, item.preset, item.output_key = job.kind, job.preset, job.output_key
        return item


def _template_out(t: Stored[Template]) -> TemplateOut:
    return TemplateOut(name=t.key, revision=t.revision, template=t.value)


def _rule_out(r: Stored[Rule]) -> RuleOut:
    return RuleOut(id=r.key, revision=r.revision, rule=r.value)


def rule_of(body: msgspec.Struct) -> Rule:
    """The rule in a body that holds more (e.g. RuleCreate's id)."""
    fields = {f: getattr(body, f) for f in Rule.__struct_fields__}
    return Rule(**fields)
