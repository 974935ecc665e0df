"""The catalog's subscriptions on one FastStream router: each catalog request answered by its function
in :mod:`mpr_catalog.queries`, and the max-deliveries advisories. The streams' batches go through
:class:`mpr_common.bus.BatchConsumer` (see :mod:`mpr_catalog.app`)."""

from __future__ import annotations

from collections.abc import Callable

from faststream.nats import NatsBroker, NatsMessage, NatsRouter

from mpr_common import subjects as s
from mpr_common.catalog_requests import REQUEST_TYPES
from mpr_common.codec import decoder, encode
from mpr_common.faststream_support import answers, pull_subscriber, settle

from .advisories import fail_abandoned_job
from .deps import CatalogDeps
from .queries import ANSWERS, QueryHandler

QUEUE_GROUP = "catalog"  # every replica answers; each request once


def _answering(subject: str, handler: QueryHandler, deps: Callable[[], CatalogDeps]):
    """The subscriber body of one request: decode it as the request answered on ``subject`` (its tag,
    when sent, must be that subject), answer, encode the reply."""
    requests = decoder(REQUEST_TYPES[subject])

    async def answer(msg: NatsMessage) -> bytes:
        return encode(await handler(deps(), requests.decode(msg.raw_message.data)))

    answer.__name__ = f"on_{handler.__name__}"
    answer.__doc__ = handler.__doc__
    return answers(answer)


def catalog_router(deps: Callable[[], CatalogDeps], identity_inbox: str | None = None) -> NatsRouter:
    """``deps()`` gives the resources made in the lifespan (the router is built before them)."""
    router = NatsRouter()
    for subject, request_type in REQUEST_TYPES.items():
        router.subscriber(subject, queue=QUEUE_GROUP)(_answering(subject, ANSWERS[request_type], deps))

    async def on_max_deliveries(msg: NatsMessage) -> None:
        d = deps()
        await settle(msg, lambda: fail_abandoned_job(d, msg.raw_message.data), d.dead_letter)

    pull_subscriber(
        router,
        s.MAX_DELIVERIES_ADVISORIES,
        s.ADVISORIES_STREAM,
        s.CATALOG_ADVISORIES_DURABLE,
        identity_inbox=identity_inbox,
    )(on_max_deliveries)
    return router


def register(broker: NatsBroker, deps: Callable[[], CatalogDeps]) -> None:
    """Attach the catalog's subscriptions to ``broker`` (its own inbox prefix for the pull consumer)."""
    prefix = broker._connection_kwargs.get("inbox_prefix")
    broker.include_router(catalog_router(deps, prefix))
