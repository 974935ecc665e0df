"""One job message from a queue class's durable pull consumer, on a pull request of our own: either at
once (``no_wait``: the server answers with a message, or "no messages", straight away) or waiting up to
a few seconds (``expires``), which can be given up early (``abort``). nats-py's fetch can only wait, to
the end: a transcoder serving several classes asks each of them in turn for the one free slot it has,
and while idle waits on all of them at once, giving up the other waits when one brings a job or a class
is paused.

Each pull has an inbox of its own, drained when a wait is given up: the server drops a waiting pull
request whose inbox has no interest left, so an abandoned wait takes no job later, and one the server
sent before it knew is still received (and returned) rather than lost until ack_wait. No answer to an
earlier pull can be taken for this one's."""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header

from mpr_common.identities import JS_API

# Past the server's own expiry, for its answer to arrive: the server answers a wait before we give up
# on it, so no job is sent to a pull nobody awaits (it would stay unacknowledged for ack_wait).
REPLY_MARGIN = 2.0
_EMPTY = ("404", "408")  # no message waiting / the wait expired


class PullRefused(Exception):
    """The server refused the pull (409: too many unacknowledged, consumer deleted, leader change …)."""


def _pull_request(wait: float | None) -> bytes:
    """The pull request for one message: waiting up to ``wait`` seconds, or answered at once."""
    request: dict[str, object] = {"batch": 1}
    if wait:
        request["expires"] = int(wait * 1e9)
    else:
        request["no_wait"] = True
    return json.dumps(request).encode()


async def _stop_listening(sub: Subscription) -> None:
    """Give up a pull's inbox: the server stops sending; what it sent already still arrives."""
    try:
        await asyncio.wait_for(sub.drain(), REPLY_MARGIN)
    except Exception:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _message_of(answer: Msg) -> Msg | None:
    """The server's answer to a pull: a message, None for none (no message waiting, the wait expired),
    or :class:`PullRefused`."""
    status = (answer.headers or {}).get(Header.STATUS)
    if not status:
        return answer
    if status in _EMPTY:
        return None
    raise PullRefused(f"{status} {(answer.headers or {}).get(Header.DESCRIPTION, '')}".strip())


async def pull_one(
    nc: Client, stream: str, durable: str, wait: float | None = None, abort: asyncio.Event | None = None
) -> Msg | None:
    """The next message of ``durable`` (acknowledge it as usual), or None when there is none: at once
    (``wait`` None) or after waiting up to ``wait`` seconds for one, or once ``abort`` is set. A job
    that came as the wait was given up is still returned: take it, or hand it back (NAK)."""
    answer: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def on_answer(msg: Msg) -> None:
        if not answer.done():
            answer.set_result(msg)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_answer, max_msgs=1)
    aborted = asyncio.ensure_future(abort.wait()) if abort is not None else None
    try:
        await nc.publish(f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}", _pull_request(wait), reply=inbox)
        waits: set[asyncio.Future] = {answer, *([aborted] if aborted else [])}
        await asyncio.wait(waits, timeout=(wait or 0.0) + REPLY_MARGIN, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if aborted is not None:
            aborted.cancel()
        if not answer.done():  # (after its one message the subscription is gone by itself)
            await _stop_listening(sub)  # what the server sent meanwhile is returned
    if not answer.done():
        if abort is not None and abort.is_set():
            return None
        raise TimeoutError(f"no answer to a pull from {durable}")
    return _message_of(answer.result())
