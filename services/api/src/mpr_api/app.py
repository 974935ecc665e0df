"""Litestar application factory: ``create_app(settings)`` mounts the features (``features.py``): their
routes, dependencies and lifespans, and one GraphQL schema of their fields at /graphql."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from nats.aio.client import Client
from nats.js.kv import KeyValue

from mpr_common.bus import connect
from mpr_common.runtime import freeze_startup_heap
from mpr_common.s3_client import S3Client

from .assets.feature import media_links
from .assets.service import AssetService
from .features import FEATURES
from .graphql.schema import build_schema
from .graphql.transport import graphql_controller
from .http.auth import Gate
from .http.bodies import ApiRequest
from .http.edge import edge
from .http.errors import EXCEPTION_HANDLERS
from .http.limits import MAX_BODY_BYTES
from .http.player_cors import PlayerCors
from .jobs.feature import job_service
from .settings import ApiSettings
from .state import STATE_KEY, ApiState

log = logging.getLogger("mpr.api")

schema = build_schema(FEATURES)

OPENAPI = OpenAPIConfig(
    title="MPR API",
    version="0.1.0",
    path="/schema",
    render_plugins=[SwaggerRenderPlugin()],
    components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    security=[{"bearer": []}],
)


def services(
    settings: ApiSettings,
    nc: Client,
    kv: KeyValue,
    public_s3: S3Client,
    owners_kv: KeyValue | None = None,
    s3: S3Client | None = None,
) -> dict[str, object]:
    """The jobs and assets services by name, made as their features' lifespans make them, for in-process
    tests (``create_app(settings, state=services(...))``). ``public_s3`` presigns links for clients,
    ``s3`` reads what signed media links name."""
    links = media_links(settings)
    # ``s3`` None: tests that read no media through the API, where the service never touches it
    assets = AssetService(settings, nc, public_s3, cast(S3Client, s3), links)
    jobs = job_service(settings, nc, kv, public_s3, owners_kv, links, s3)
    return {"nc": nc, "jobs": jobs, "assets": assets}


def create_app(settings: ApiSettings, state: Mapping[str, object] | None = None) -> Litestar:
    """``state`` given (in-process tests: services by name, see :func:`services`): the app uses them
    instead of connecting to NATS and S3, and no feature's lifespan runs. Its services serve requests at
    once (tests without a lifespan call the app directly); its connection counts for readiness from the
    lifespan on, as a real one does."""
    named = dict(state or {})
    given_nc = named.pop("nc", None)
    api = ApiState.of(named)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if state is not None:
            api.nc = cast(Client | None, given_nc)
            yield
            return
        api.nc = nc = await connect(settings.nats, "mpr-api")
        try:
            async with AsyncExitStack() as features:
                for feature in FEATURES:
                    if feature.lifespan is not None:
                        await features.enter_async_context(feature.lifespan(settings, api))
                log.info("api ready on %s:%d", settings.host, settings.port)
                freeze_startup_heap()
                yield
        finally:
            await nc.drain()

    return Litestar(
        route_handlers=[
            *(route for feature in FEATURES for route in feature.routes),
            graphql_controller(schema, path="/graphql"),
        ],
        middleware=[edge(Gate.from_settings(settings), PlayerCors(settings.player_origins))],
        logging_config=None,
        dependencies={name: dep for feature in FEATURES for name, dep in feature.dependencies.items()},
        lifespan=[lifespan],
        state=State({STATE_KEY: api}),
        request_class=ApiRequest,
        request_max_body_size=MAX_BODY_BYTES,  # 413 beyond, from Content-Length when it is given
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OPENAPI,
    )
