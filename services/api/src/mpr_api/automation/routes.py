"""REST: /api/templates and /api/rules. Writes take ``If-Match: "<revision>"`` (409 when the value has
moved on) or ``If-None-Match: *`` (create only); answers carry the revision as their ETag."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter

from mpr_common.errors import BadRequest

from .rules import Rule
from .schemas import DryRunOut, RuleCreate, RuleOut, TemplateHistory, TemplateOut
from .service import DRY_RUN_LIMIT, MAX_DRY_RUN_LIMIT, AutomationService, rule_of
from .templates import MAX_NAME_CHARS, MAX_REVISION, NAME_PATTERN, RULE_ID_PATTERN, Template, parse_revision

TemplateName = Annotated[str, Parameter(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]
RuleIdParam = Annotated[str, Parameter(max_length=MAX_NAME_CHARS, pattern=RULE_ID_PATTERN)]
DryRunLimit = Annotated[int, Parameter(ge=1, le=MAX_DRY_RUN_LIMIT)]


class TemplateList(msgspec.Struct, kw_only=True):
    items: list[TemplateOut]


class RuleList(msgspec.Struct, kw_only=True):
    items: list[RuleOut]


def expected_revision(request: Request) -> int | None:
    """The revision a write expects: ``If-Match: "12"`` → 12, ``If-None-Match: *`` → 0 (must not exist),
    neither → None (last writer wins)."""
    if request.headers.get("if-none-match", "").strip() == "*":
        return 0
    tag = request.headers.get("if-match")
    if tag is None:
        return None
    revision = parse_revision(tag.strip().removeprefix("W/").strip('"'))
    if revision is None:
        raise BadRequest(f'If-Match takes a revision from 1 to {MAX_REVISION}, e.g. If-Match: "12"')
    return revision


def _etag(revision: int) -> dict[str, str]:
    return {"ETag": f'"{revision}"'}


class TemplateController(Controller):
    path = "/api/templates"
    tags = ["automation"]

    @get("/", summary="Job templates (their latest revisions)")
    async def list_templates(self, automation: AutomationService) -> TemplateList:
        return TemplateList(items=await automation.list_templates())

    @get("/{name:str}", summary="A job template: its latest revision, or ?revision=n")
    async def get_template(
        self,
        automation: AutomationService,
        name: TemplateName,
        revision: Annotated[int | None, Parameter(ge=1, le=MAX_REVISION)] = None,
    ) -> Response[TemplateOut]:
        out = await automation.get_template(name, revision)
        return Response(out, headers=_etag(out.revision))

    @get("/{name:str}/revisions", summary="The revisions kept of a template (the last 64 writes)")
    async def template_history(self, automation: AutomationService, name: TemplateName) -> TemplateHistory:
        return await automation.template_history(name)

    @put(
        "/{name:str}",
        summary="Create or update a job template",
        description=(
            "201 when created, 200 when updated; 400 when the template does not make a valid job (its "
            "sample job is checked like any job request); 409 when If-Match names a revision that is no "
            "longer the latest, or If-None-Match: * and it exists. `output_key` is a pattern: {key}, "
            "{path}, {dir}, {name}, {stem}, {ext}, {job_id}, {kind}, {preset}."
        ),
    )
    async def put_template(
        self, request: Request, automation: AutomationService, name: TemplateName, data: Template
    ) -> Response[TemplateOut]:
        out, created = await automation.put_template(name, data, expected_revision(request))
        return Response(out, status_code=201 if created else 200, headers=_etag(out.revision))

    @delete(
        "/{name:str}",
        status_code=204,
        summary="Delete a job template (its revisions stay readable); 409 while rules use it",
    )
    async def delete_template(
        self, request: Request, automation: AutomationService, name: TemplateName
    ) -> None:
        await automation.delete_template(name, expected_revision(request))


class RuleController(Controller):
    path = "/api/rules"
    tags = ["automation"]

    @get("/", summary="Automation rules")
    async def list_rules(self, automation: AutomationService) -> RuleList:
        return RuleList(items=await automation.list_rules())

    @post(
        "/",
        status_code=201,
        summary="Create a rule: registered objects matching it start a job from its template",
        description=(
            "Fires on every object registered from now on (by a scan or a MinIO notification), once per "
            "bucket, key, etag and rule. 409 when `id` is taken; 400 when the template does not exist or a "
            "condition does not fit its field."
        ),
    )
    async def create_rule(self, automation: AutomationService, data: RuleCreate) -> Response[RuleOut]:
        out, _ = await automation.put_rule(data.id, rule_of(data), 0 if data.id else None)
        return Response(out, status_code=201, headers=_etag(out.revision))

    @post(
        "/dry-run",
        status_code=200,
        summary="What an unsaved rule would start now",
        description="With ?id= the objects that rule (as stored under that id) already fired on are marked.",
    )
    async def dry_run_draft(
        self,
        automation: AutomationService,
        data: Rule,
        id: Annotated[str | None, Parameter(max_length=MAX_NAME_CHARS, pattern=RULE_ID_PATTERN)] = None,
        limit: DryRunLimit = DRY_RUN_LIMIT,
    ) -> DryRunOut:
        return await automation.dry_run(data, id, limit)

    @get("/{rule_id:str}", summary="A rule")
    async def get_rule(self, automation: AutomationService, rule_id: RuleIdParam) -> Response[RuleOut]:
        out = await automation.get_rule(rule_id)
        return Response(out, headers=_etag(out.revision))

    @put("/{rule_id:str}", summary="Create or update a rule (If-Match for optimistic concurrency)")
    async def put_rule(
        self, request: Request, automation: AutomationService, rule_id: RuleIdParam, data: Rule
    ) -> Response[RuleOut]:
        out, created = await automation.put_rule(rule_id, data, expected_revision(request))
        return Response(out, status_code=201 if created else 200, headers=_etag(out.revision))

    @delete("/{rule_id:str}", status_code=204, summary="Delete a rule")
    async def delete_rule(
        self, request: Request, automation: AutomationService, rule_id: RuleIdParam
    ) -> None:
        await automation.delete_rule(rule_id, expected_revision(request))

    @post(
        "/{rule_id:str}/dry-run",
        status_code=200,
        summary="The registered objects a rule matches now, the jobs it would start, those it already started",
    )
    async def dry_run(
        self, automation: AutomationService, rule_id: RuleIdParam, limit: DryRunLimit = DRY_RUN_LIMIT
    ) -> DryRunOut:
        return await automation.dry_run_stored(rule_id, limit)
