"""REST bodies of templates, rules and dry runs (the stored values are automation.templates' and automation.rules')."""

from __future__ import annotations

import msgspec

from .rules import Rule
from .templates import RuleId, Template


class TemplateOut(msgspec.Struct, kw_only=True):
    name: str
    revision: int  # its KV revision: what If-Match and ?revision= take, and jobs record as name@revision
    template: Template


class TemplateRevision(msgspec.Struct, kw_only=True):
    revision: int
    deleted: bool = False  # the template was deleted at this revision


class TemplateHistory(msgspec.Struct, kw_only=True):
    name: str
    revisions: list[TemplateRevision]  # oldest first; the last 64 writes are kept


class RuleCreate(Rule, kw_only=True, forbid_unknown_fields=True):
    """A new rule; without ``id`` one is generated."""

    id: RuleId | None = None


class RuleOut(msgspec.Struct, kw_only=True):
    id: str
    revision: int
    rule: Rule


class DryRunItem(msgspec.Struct, kw_only=True):
    """A registered object the rule matches now, and the job it starts (or started) for it."""

    asset_id: str
    bucket: str
    key: str
    etag: str
    job_id: str | None  # None for an unsaved rule: a rule's jobs are named after its id
    fired: bool  # the rule already fired on this object version (see ``firing``)
    firing: str | None = None  # claimed, started or refused
    kind: str | None = None
    preset: str | None = None
    output_key: str | None = None
    error: str | None = None  # why no job can be made for it (the rule would record a refusal)


class DryRunOut(msgspec.Struct, kw_only=True):
    rule_id: str | None
    template: str  # name@revision the jobs would be made from
    examined: int  # registered objects under the rule's prefix
    matched: int
    would_start: int  # matched and not fired yet
    already_fired: int
    waiting_for_probe: int  # under the prefix and glob but not probed yet: evaluated once probed
    items: list[DryRunItem]
    truncated: bool = False  # more matches than ``limit``
