"""Assets: the media library (``/api/assets``, scans at ``/api/scan``, ``assets``/``asset`` and
``scanMediaFolder`` in GraphQL) and the media behind it (``/media/in``, ``/media/out`` and signed folder
links at ``/media/s``)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mpr_common.s3_client import S3Client
from mpr_common.storage import get_s3_client, make_public_client

from ..feature import Feature, provide
from ..state import ApiState
from .graphql import AssetsMutation, AssetsQuery
from .media_links import MediaLinks
from .media_routes import clearkey_license, content_key, media_in, media_out, media_signed
from .routes import AssetController, ScanController
from .service import AssetService
from .settings import AssetSettings

log = logging.getLogger("mpr.api")


def media_links(settings: AssetSettings) -> MediaLinks:
    secret = settings.media_secret or secrets.token_hex(32)
    if not settings.media_secret:
        log.warning("API_MEDIA_SECRET is unset: signed media links are valid on this API replica only")
    return MediaLinks(secret.encode(), settings.media_ttl, settings.public_url)


@asynccontextmanager
async def lifespan(settings: AssetSettings, state: ApiState) -> AsyncIterator[None]:
    links = media_links(settings)
    public_s3: S3Client = make_public_client(settings.s3)  # presigns links for clients
    s3: S3Client = get_s3_client(settings.s3)  # reads what signed media links name
    state.provide(links, AssetService(settings, state.bus(), public_s3, s3, links))
    yield


FEATURE = Feature(
    "assets",
    routes=[
        AssetController,
        ScanController,
        media_in,
        media_out,
        media_signed,
        content_key,
        clearkey_license,
    ],
    dependencies={"assets": provide(AssetService)},
    lifespan=lifespan,
    graphql_query=AssetsQuery,
    graphql_mutation=AssetsMutation,
)
