"""Litestar application factory: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from strawberry.litestar import make_graphql_controller

from mpr_common.bus import connect
from mpr_common.storage import make_public_client
from mpr_common.streams import ensure_job_state_kv, ensure_streams

from .auth import token_guard
from .backend import Backend, BadRequest, Conflict, NotFound, Unavailable
from .graphql_schema import schema
from .routes.assets import AssetController
from .routes.health import live, ready
from .routes.jobs import JobController
from .routes.media import media_in, media_out
from .routes.presets import list_presets
from .settings import ApiSettings
from .trace_middleware import trace_middleware

log = logging.getLogger("mpr.api")

_STATUS = {BadRequest: 400, NotFound: 404, Conflict: 409, Unavailable: 503}


def _domain_error(_request: Request, exc: Exception) -> Response:
    status = _STATUS[type(exc)]
    return Response({"status_code": status, "detail": str(exc)}, status_code=status)


def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        body = {"status_code": exc.status_code, "detail": exc.detail}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)


def create_app(settings: ApiSettings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        nc = await connect(settings.nats, "mpr-api")
        js = nc.jetstream()
        await ensure_streams(js, settings.nats.stream_replicas)
        kv = await ensure_job_state_kv(js, settings.nats.stream_replicas)
        app.state.backend = Backend(settings, nc, kv, make_public_client(settings.s3))
        log.info("api ready on %s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            await nc.drain()

    def provide_backend(request: Request) -> Backend:
        return request.app.state.backend

    GraphQL = make_graphql_controller(schema, path="/graphql", graphql_ide="graphiql")

    return Litestar(
        route_handlers=[
            AssetController,
            JobController,
            list_presets,
            media_in,
            media_out,
            live,
            ready,
            GraphQL,
            PrometheusController,
        ],
        middleware=[
            trace_middleware,
            PrometheusConfig(
                app_name="mpr_api", prefix="mpr", group_path=True, exclude=["/metrics", "/health"]
            ).middleware,
        ],
        logging_config=None,
        dependencies={"backend": Provide(provide_backend, sync_to_thread=False)},
        guards=[token_guard(settings.tokens, settings.public_media)],
        lifespan=[lifespan],
        exception_handlers={
            BadRequest: _domain_error,
            NotFound: _domain_error,
            Conflict: _domain_error,
            Unavailable: _domain_error,
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
