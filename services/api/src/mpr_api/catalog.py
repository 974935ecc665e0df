"""Asking the catalog: one typed request of mpr_common.catalog_requests in, sent on its own subject, and
the reply type that request names out (an error answer raises the error it carries)."""

from __future__ import annotations

from typing import overload

from nats.aio.client import Client

from mpr_common.bus import request
from mpr_common.catalog_requests import (
    AssetReply,
    AssetsPage,
    CatalogReply,
    CatalogRequest,
    FindJobRequests,
    GetAsset,
    GetJob,
    GetJobLog,
    GetScan,
    JobLogReply,
    JobReply,
    JobRequestsReply,
    JobsPage,
    ListAssets,
    ListJobs,
    ScanReply,
    subject_of,
)


@overload
async def ask_catalog(nc: Client, req: ListAssets, timeout: float) -> AssetsPage: ...
@overload
async def ask_catalog(nc: Client, req: GetAsset, timeout: float) -> AssetReply: ...
@overload
async def ask_catalog(nc: Client, req: ListJobs, timeout: float) -> JobsPage: ...
@overload
async def ask_catalog(nc: Client, req: GetJob, timeout: float) -> JobReply: ...
@overload
async def ask_catalog(nc: Client, req: GetJobLog, timeout: float) -> JobLogReply: ...
@overload
async def ask_catalog(nc: Client, req: FindJobRequests, timeout: float) -> JobRequestsReply: ...
@overload
async def ask_catalog(nc: Client, req: GetScan, timeout: float) -> ScanReply: ...
async def ask_catalog(nc: Client, req: CatalogRequest, timeout: float) -> CatalogReply:
    return await request(nc, subject_of(req), req, type(req).reply, timeout)
