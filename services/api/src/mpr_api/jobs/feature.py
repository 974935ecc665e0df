"""Jobs: ``/api/jobs`` (submit, list, get, cancel, and the callback of a job run outside the
transcoders), ``job``/``jobs``/``submitJob``/``cancelJob`` in GraphQL. Needs the assets feature's media
links and S3 client, so it starts after it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from nats.aio.client import Client
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.jobstate import JobState
from mpr_common.outputs import OutputOwners
from mpr_common.s3_client import S3Client

from ..assets.media_links import MediaLinks
from ..assets.service import AssetService
from ..feature import Feature, provide
from ..state import ApiState
from .callbacks import CallbackTokens
from .graphql import JobsMutation, JobsQuery
from .routes import JobController
from .service import JobService
from .settings import JobSettings

log = logging.getLogger("mpr.api")


def job_service(
    settings: JobSettings,
    nc: Client,
    kv: KeyValue,
    public_s3: S3Client,
    owners_kv: KeyValue | None,
    links: MediaLinks,
    s3: S3Client | None = None,
) -> JobService:
    """The jobs service over the job-state and output-owners KV buckets (``owners_kv`` None: no
    package's outputs are claimed, in tests that submit none); ``s3`` lists a source's subtitle files
    when a job names subtitle languages (None: not listed)."""
    secret = settings.callback_secret or secrets.token_hex(32)
    if not settings.callback_secret:
        log.warning("API_CALLBACK_SECRET is unset: callback tokens are valid on this API replica only")
    callbacks = CallbackTokens(secret.encode(), settings.callback_ttl)
    # None only where no package is submitted, so the owners are never asked
    owners = OutputOwners(cast(KeyValue, owners_kv))
    return JobService(settings, nc, JobState(kv), public_s3, callbacks, owners, links, s3)


@asynccontextmanager
async def lifespan(settings: JobSettings, state: ApiState) -> AsyncIterator[None]:
    nc = state.bus()
    js = nc.jetstream()
    kv, owners = await js.key_value(s.JOB_STATE_KV), await js.key_value(s.OUTPUT_OWNERS_KV)  # by mpr-setup
    assets = state.get(AssetService)
    jobs = job_service(settings, nc, kv, assets.public_s3, owners, state.get(MediaLinks), assets.s3)
    state.provide(jobs, jobs.owners)  # the owners for rules, which start jobs of their own
    yield


FEATURE = Feature(
    "jobs",
    routes=[JobController],
    dependencies={"jobs": provide(JobService)},
    lifespan=lifespan,
    graphql_query=JobsQuery,
    graphql_mutation=JobsMutation,
)
