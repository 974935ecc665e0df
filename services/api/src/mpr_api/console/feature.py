"""The web console at /console: pages served by the API itself (same origin, same tokens, a session
cookie once signed in), presigned uploads at /api/uploads, static files at /console/static."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Request, Response
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import InternalServerException
from litestar.static_files import create_static_files_router

from ..assets.service import AssetService
from ..feature import Feature, provide
from ..state import ApiState
from .pages import ROUTES
from .settings import ConsoleSettings
from .site import STATIC, STATIC_PATH, Console
from .upload_routes import UploadController
from .uploads import UploadService


def console_state(settings: ConsoleSettings, assets: AssetService) -> dict[str, object]:
    """The console's services by name, as in-process tests give them to ``create_app(state=…)``."""
    return {
        "console": Console(settings),
        "uploads": UploadService(settings, assets.s3, assets.public_s3),
    }


@asynccontextmanager
async def lifespan(settings: ConsoleSettings, state: ApiState) -> AsyncIterator[None]:
    state.provide(*console_state(settings, state.get(AssetService)).values())
    yield


_BAD_NAME = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.ENOTDIR, errno.ELOOP})


def _no_such_file(_request: Request, exc: Exception) -> Response:
    """A name the file system refuses (too long, a NUL byte; Litestar wraps the OSError in a 500) names
    no file: a 404. Any other failure stays a 500."""
    cause = exc if isinstance(exc, OSError | ValueError) else exc.__cause__
    if isinstance(cause, ValueError) or (isinstance(cause, OSError) and cause.errno in _BAD_NAME):
        return Response({"status_code": 404, "detail": "no such file"}, status_code=404)
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)


static_files = create_static_files_router(
    path=STATIC_PATH,
    directories=[STATIC],
    name="console-static",
    # revalidated on every use (a 304 when unchanged): an upgraded API never runs yesterday's scripts
    cache_control=CacheControlHeader(no_cache=True),
    include_in_schema=False,
    exception_handlers={
        InternalServerException: _no_such_file,
        OSError: _no_such_file,
        ValueError: _no_such_file,
    },
)

FEATURE = Feature(
    "console",
    routes=[*ROUTES, UploadController, static_files],
    dependencies={"uploads": provide(UploadService)},
    lifespan=lifespan,
)
