"""Litestar application factory: ``create_app(settings)``."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from mpr_common import subjects as s
from mpr_common.bus import connect
from mpr_common.errors import MprError
from mpr_common.jobstate import JobState
from mpr_common.outputs import OutputOwners
from mpr_common.runtime import freeze_startup_heap
from mpr_common.storage import get_s3_client, make_public_client

from .auth import AuthThrottle, Gate, Sessions
from .bodies import TOO_LARGE, ApiRequest
from .callbacks import CallbackTokens
from .domain.assets import AssetService
from .domain.jobs import JobService
from .edge import edge
from .features import FEATURES
from .graphql_http import graphql_controller
from .graphql_schema import schema
from .limits import MAX_BODY_BYTES
from .media_links import MediaLinks
from .routes.assets import AssetController, ScanController
from .routes.health import live, ready
from .routes.jobs import JobController
from .routes.media import media_in, media_out, media_signed
from .routes.presets import list_presets
from .settings import ApiSettings

log = logging.getLogger("mpr.api")


_MAX_REASON_CHARS = 300  # of each reason a validation error quotes (it may quote the client's input)


def _domain_error(_request: Request, exc: MprError) -> Response:
    body = {"status_code": exc.code, "detail": exc.detail, **getattr(exc, "extra", {})}
    return Response(body, status_code=exc.code)


def _http_detail(exc: HTTPException) -> str:
    if isinstance(exc, RequestEntityTooLarge):
        return TOO_LARGE
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        # "Validation failed for POST /api/jobs" says nothing: name each field and what is wrong
        reasons = [
            (
                str(e.get("message", ""))
                if e.get("key") in (None, "data")
                else f"{e['key']}: {e.get('message', '')}"
            )[:_MAX_REASON_CHARS]
            for e in exc.extra[:10]
            if isinstance(e, dict)
        ]
        if reasons:
            return f"{exc.detail}: {'; '.join(reasons)}"
    return exc.detail


def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        body = {"status_code": exc.status_code, "detail": _http_detail(exc)}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)


def services(
    settings: ApiSettings, nc: Any, kv: Any, public_s3: Any, owners_kv: Any = None, s3: Any = None
) -> dict[str, Any]:
    """What the handlers are given (``app.state``): the NATS connection and the domain services.
    ``public_s3`` presigns links for clients, ``s3`` reads what signed media links name."""
    secret = settings.callback_secret or secrets.token_hex(32)
    if not settings.callback_secret:
        log.warning("API_CALLBACK_SECRET is unset: callback tokens are valid on this API replica only")
    callbacks = CallbackTokens(secret.encode(), settings.callback_ttl)
    media_secret = settings.media_secret or secrets.token_hex(32)
    if not settings.media_secret:
        log.warning("API_MEDIA_SECRET is unset: signed media links are valid on this API replica only")
    links = MediaLinks(media_secret.encode(), settings.media_ttl, settings.public_url)
    return {
        "nc": nc,
        "jobs": JobService(settings, nc, JobState(kv), public_s3, callbacks, OutputOwners(owners_kv), links),
        "assets": AssetService(settings, nc, public_s3, s3, links),
    }


def create_app(settings: ApiSettings, state: dict[str, Any] | None = None) -> Litestar:
    """``state`` given (in-process tests): use it instead of connecting to NATS and S3."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if state is not None:
            app.state.update(state)
            yield
            return
        nc = await connect(settings.nats, "mpr-api")
        js = nc.jetstream()
        kv, owners = (
            await js.key_value(s.JOB_STATE_KV),
            await js.key_value(s.OUTPUT_OWNERS_KV),
        )  # by mpr-setup
        app.state.update(
            services(settings, nc, kv, make_public_client(settings.s3), owners, get_s3_client(settings.s3))
        )
        try:
            async with AsyncExitStack() as features:
                for feature in FEATURES:
                    if feature.lifespan is not None:
                        await features.enter_async_context(feature.lifespan(settings, app.state))
                log.info("api ready on %s:%d", settings.host, settings.port)
                freeze_startup_heap()
                yield
        finally:
            await nc.drain()

    def provide_jobs(request: Request) -> JobService:
        return request.app.state.jobs

    def provide_assets(request: Request) -> AssetService:
        return request.app.state.assets

    GraphQL = graphql_controller(schema, path="/graphql")

    return Litestar(
        route_handlers=[
            AssetController,
            ScanController,
            JobController,
            list_presets,
            media_in,
            media_out,
            media_signed,
            live,
            ready,
            GraphQL,
            *(route for feature in FEATURES for route in feature.routes),
        ],
        middleware=[
            edge(
                Gate(
                    settings.tokens,
                    settings.public_media,
                    Sessions.from_settings(settings),
                    AuthThrottle.from_settings(settings),
                )
            )
        ],
        logging_config=None,
        dependencies={
            "jobs": Provide(provide_jobs, sync_to_thread=False),
            "assets": Provide(provide_assets, sync_to_thread=False),
            **{name: dep for feature in FEATURES for name, dep in feature.dependencies.items()},
        },
        lifespan=[lifespan],
        request_class=ApiRequest,
        request_max_body_size=MAX_BODY_BYTES,  # 413 beyond, from Content-Length when it is given
        exception_handlers={
            MprError: _domain_error,
            Exception: _internal_error,
        },
        openapi_config=OpenAPIConfig(
            title="MPR API",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
    )
