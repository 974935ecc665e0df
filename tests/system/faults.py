"""Helpers for fault tests: stacks with custom settings, reading events back from JetStream."""

from __future__ import annotations

import asyncio
import json

import nats
from nats.errors import TimeoutError as NatsTimeout


async def _stream_events(url: str, stream: str, subject: str) -> list[dict]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream=stream)
        out: list[dict] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1)
            except (TimeoutError, NatsTimeout):
                break
            for m in msgs:
                out.append({"subject": m.subject, "headers": dict(m.headers or {}), **json.loads(m.data)})
                await m.ack()
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def stream_events(url: str, stream: str, subject: str) -> list[dict]:
    return asyncio.run(_stream_events(url, stream, subject))


async def _consumer_info(url: str, stream: str, durable: str):
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()


def consumer_info(url: str, stream: str, durable: str):
    return asyncio.run(_consumer_info(url, stream, durable))


async def _delete_consumer(url: str, stream: str, durable: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_consumer(stream, durable)
    finally:
        await nc.close()


def delete_consumer(url: str, stream: str, durable: str) -> None:
    asyncio.run(_delete_consumer(url, stream, durable))


async def _js_publish(url: str, subject: str, payload: bytes, msg_id: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


def js_publish(url: str, subject: str, payload: bytes, msg_id: str) -> None:
    asyncio.run(_js_publish(url, subject, payload, msg_id))
