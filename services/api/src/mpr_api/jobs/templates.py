"""A job request naming a template (``POST /api/jobs`` with ``"template": "name"`` or ``"name@revision"``):
the template's fields are the defaults, the fields the request gives win."""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext

from mpr_common.errors import NotFound
from mpr_common.events import new_id

from ..automation.store import TemplateStore
from ..automation.templates import (
    TemplateError,
    given_fields,
    parse_template_ref,
    template_ref,
    templated_fields,
)
from ..http.field_errors import FieldError
from .schemas import JobCreate


async def templated_body(js: JetStreamContext, body: JobCreate) -> tuple[JobCreate, str]:
    """``body`` with its template applied (and a job id, which an output key pattern may name), and the
    "<name>@<revision>" it was made from. 400 for a template that does not exist or does not fit."""
    assert body.template is not None
    try:
        name, revision = parse_template_ref(body.template)
    except TemplateError as exc:
        raise FieldError(str(exc), "template") from None
    try:
        stored = await TemplateStore(js).get(name, revision)
    except NotFound as exc:
        raise FieldError(f"template: {exc.detail}", "template") from None
    job_id = body.job_id or new_id()
    try:
        fields = templated_fields(stored.value, given_fields(body), body.source_key, job_id)
        merged = msgspec.convert({**msgspec.structs.asdict(body), **fields, "job_id": job_id}, JobCreate)
    except (TemplateError, msgspec.ValidationError) as exc:
        raise FieldError(f"template {name!r}: {exc}", "template") from None
    return merged, template_ref(name, stored.revision)
