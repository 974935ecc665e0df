"""GraphQL: job templates and rules (the same service, bounds and errors as REST)."""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from ..graphql.errors import maybe as _maybe
from ..graphql.overlays import PreviewInput, WatermarkInput, unset_dropped
from .rules import Rule
from .schemas import DryRunOut, RuleOut, TemplateOut
from .service import DRY_RUN_LIMIT, MAX_DRY_RUN_LIMIT, AutomationService
from .templates import MAX_NAME_CHARS, NAME_PATTERN, RULE_ID_PATTERN, Revision, Template

TemplateName = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]
RuleId = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS, pattern=RULE_ID_PATTERN)]
ExpectedRevision = Annotated[int, msgspec.Meta(ge=0)]  # 0: must not exist yet
DryRunLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_DRY_RUN_LIMIT)]


def _automation(info: Info) -> AutomationService:
    return service(info, AutomationService)


def _input(value: Any, type_: Any, what: str) -> Any:
    """A GraphQL input as the REST body it stands for, with the same checks (unset fields dropped)."""
    return _checked(unset_dropped(value), type_, what)


def _name(name: str) -> str:
    return _checked(name, TemplateName, "name")


def _rule_id(rule_id: str) -> str:
    return _checked(rule_id, RuleId, "id")


def _revision(revision: int | None) -> int | None:
    return _checked(revision, ExpectedRevision | None, "expectedRevision")


@strawberry.type(description="A job template: the defaults of the jobs made from it")
class JobTemplate:
    name: str
    revision: int
    kind: str
    preset: str | None
    output_key: str | None
    loudnorm: bool
    storyboard: bool
    priority: str
    start: float | None
    end: float | None
    chunk_seconds: float | None
    progressive: bool | None
    audio_languages: list[str] | None
    subtitle_languages: list[str] | None
    burn_subtitles: str | None
    encryption: str | None
    watermark: JSON | None
    preview: JSON | None
    keep_if: str | None
    min_psnr: float | None
    min_ssim: float | None
    ladder: str | None
    quality_target: JSON | None
    description: str

    @classmethod
    def of(cls, t: TemplateOut) -> JobTemplate:
        fields = msgspec.structs.asdict(t.template)
        for name in ("watermark", "preview", "quality_target"):  # structs, as the JSON they are
            fields[name] = msgspec.to_builtins(fields[name])
        return cls(name=t.name, revision=t.revision, **fields)


@strawberry.input
class JobTemplateInput:
    kind: str
    preset: str | None = None
    output_key: str | None = None
    loudnorm: bool | None = None
    storyboard: bool | None = None
    priority: str | None = None
    start: float | None = None
    end: float | None = None
    chunk_seconds: float | None = None
    progressive: bool | None = None
    audio_languages: list[str] | None = None
    subtitle_languages: list[str] | None = None
    burn_subtitles: str | None = None
    encryption: str | None = None
    watermark: WatermarkInput | None = None
    preview: PreviewInput | None = None
    keep_if: str | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None
    ladder: str | None = None
    quality_target: JSON | None = None
    description: str | None = None


@strawberry.type(description="field op value over the object's ffprobe metadata")
class RuleCondition:
    field: str
    op: str
    value: JSON


@strawberry.input
class RuleConditionInput:
    field: str
    op: str
    value: JSON


@strawberry.type(description="Registered objects matching it start one job from its template")
class AutomationRule:
    id: str
    revision: int
    template: str
    template_revision: int | None
    name: str
    bucket: str | None
    prefix: str
    glob: str | None
    conditions: list[RuleCondition]
    enabled: bool
    priority: str | None
    description: str
    on: str = strawberry.field(description='"object.registered" (default) or "job.not_kept"')

    @classmethod
    def of(cls, r: RuleOut) -> AutomationRule:
        fields = msgspec.structs.asdict(r.rule)
        fields["conditions"] = [
            RuleCondition(field=c.field, op=c.op, value=cast(Any, c.value))  # value: a JSON scalar
            for c in r.rule.conditions
        ]
        return cls(id=r.id, revision=r.revision, **fields)


@strawberry.input
class AutomationRuleInput:
    template: str
    template_revision: int | None = None
    name: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    glob: str | None = None
    conditions: list[RuleConditionInput] | None = None
    enabled: bool | None = None
    priority: str | None = None
    description: str | None = None
    on: str | None = None


@strawberry.type
class RuleDryRunItem:
    asset_id: str
    key: str
    etag: str
    job_id: str | None
    fired: bool
    firing: str | None
    kind: str | None
    preset: str | None
    output_key: str | None
    error: str | None


@strawberry.type(description="What a rule would start now, and what it already started")
class RuleDryRun:
    rule_id: str | None
    template: str
    examined: int
    matched: int
    would_start: int
    already_fired: int
    waiting_for_probe: int
    truncated: bool
    items: list[RuleDryRunItem]

    @classmethod
    def of(cls, d: DryRunOut) -> RuleDryRun:
        fields = msgspec.structs.asdict(d)
        fields["items"] = [
            RuleDryRunItem(
                asset_id=i.asset_id,
                key=i.key,
                etag=i.etag,
                job_id=i.job_id,
                fired=i.fired,
                firing=i.firing,
                kind=i.kind,
                preset=i.preset,
                output_key=i.output_key,
                error=i.error,
            )
            for i in d.items
        ]
        return cls(**fields)


def _limit(limit: int) -> int:
    return _checked(limit, DryRunLimit, "limit")


@strawberry.type
class AutomationQuery:
    @strawberry.field(description="Job templates (their latest revisions)")
    async def job_templates(self, info: Info) -> list[JobTemplate]:
        return [JobTemplate.of(t) for t in await _call(_automation(info).list_templates())]

    @strawberry.field(description="A job template: its latest revision, or the one asked for")
    async def job_template(self, info: Info, name: str, revision: int | None = None) -> JobTemplate | None:
        revision = _checked(revision, Revision | None, "revision")
        out = await _maybe(_automation(info).get_template(_name(name), revision))
        return JobTemplate.of(out) if out else None

    @strawberry.field
    async def rules(self, info: Info) -> list[AutomationRule]:
        return [AutomationRule.of(r) for r in await _call(_automation(info).list_rules())]

    @strawberry.field
    async def rule(self, info: Info, id: str) -> AutomationRule | None:
        out = await _maybe(_automation(info).get_rule(_rule_id(id)))
        return AutomationRule.of(out) if out else None

    @strawberry.field(
        description="The registered objects a stored rule matches now and the jobs it would start"
    )
    async def rule_dry_run(self, info: Info, id: str, limit: int = DRY_RUN_LIMIT) -> RuleDryRun:
        return RuleDryRun.of(await _call(_automation(info).dry_run_stored(_rule_id(id), _limit(limit))))

    @strawberry.field(
        description="The same for an unsaved rule (with id: marks what that stored rule fired on)"
    )
    async def rule_draft_dry_run(
        self, info: Info, rule: AutomationRuleInput, id: str | None = None, limit: int = DRY_RUN_LIMIT
    ) -> RuleDryRun:
        draft = _input(rule, Rule, "rule")
        rule_id = _rule_id(id) if id is not None else None
        return RuleDryRun.of(await _call(_automation(info).dry_run(draft, rule_id, _limit(limit))))


@strawberry.type
class AutomationMutation:
    @strawberry.mutation(description="Create or update a job template (expectedRevision: 0 = must not exist)")
    async def put_job_template(
        self, info: Info, name: str, template: JobTemplateInput, expected_revision: int | None = None
    ) -> JobTemplate:
        body = _input(template, Template, "template")
        out, _ = await _call(_automation(info).put_template(_name(name), body, _revision(expected_revision)))
        return JobTemplate.of(out)

    @strawberry.mutation(description="Delete a job template (refused while rules use it)")
    async def delete_job_template(self, info: Info, name: str, expected_revision: int | None = None) -> bool:
        await _call(_automation(info).delete_template(_name(name), _revision(expected_revision)))
        return True

    @strawberry.mutation(description="Create a rule (without id: a generated one)")
    async def create_rule(
        self, info: Info, rule: AutomationRuleInput, id: str | None = None
    ) -> AutomationRule:
        body = _input(rule, Rule, "rule")
        rule_id = _rule_id(id) if id is not None else None
        out, _ = await _call(_automation(info).put_rule(rule_id, body, 0 if rule_id else None))
        return AutomationRule.of(out)

    @strawberry.mutation(description="Create or update a rule (expectedRevision: 0 = must not exist)")
    async def put_rule(
        self, info: Info, id: str, rule: AutomationRuleInput, expected_revision: int | None = None
    ) -> AutomationRule:
        body = _input(rule, Rule, "rule")
        out, _ = await _call(_automation(info).put_rule(_rule_id(id), body, _revision(expected_revision)))
        return AutomationRule.of(out)

    @strawberry.mutation
    async def delete_rule(self, info: Info, id: str, expected_revision: int | None = None) -> bool:
        await _call(_automation(info).delete_rule(_rule_id(id), _revision(expected_revision)))
        return True
