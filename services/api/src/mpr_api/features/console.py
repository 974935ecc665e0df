"""The web console at /console: pages served by the API itself (same origin, same tokens, a session
cookie once signed in), presigned uploads at /api/uploads, static files at /console/static."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from ..console.pages import ROUTES
from ..console.site import STATIC, STATIC_PATH, Console
from ..console.upload_routes import UploadController
from ..console.uploads import UploadService
from ..feature import Feature
from ..settings import ApiSettings


def console_state(settings: ApiSettings, assets: Any) -> dict[str, Any]:
    """What the console adds to ``app.state`` (in-process tests call it with their own AssetService)."""
    return {
        "console": Console(settings),
        "uploads": UploadService(settings, assets.s3, assets.public_s3),
    }


@asynccontextmanager
async def lifespan(settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    state.update(console_state(settings, state["assets"]))
    yield


def provide_uploads(request: Request) -> UploadService:
    return request.app.state.uploads


static_files = create_static_files_router(
    path=STATIC_PATH,
    directories=[STATIC],
    name="console-static",
    # revalidated on every use (a 304 when unchanged): an upgraded API never runs yesterday's scripts
    cache_control=CacheControlHeader(no_cache=True),
    include_in_schema=False,
)

FEATURE = Feature(
    "console",
    routes=[*ROUTES, UploadController, static_files],
    dependencies={"uploads": Provide(provide_uploads, sync_to_thread=False)},
    lifespan=lifespan,
)
