"""One delivery attempt: POST the CloudEvent, signed, through the guarded client; what came back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import msgspec

from .cloudevents import CONTENT_TYPE
from .model import MAX_ERROR_CHARS, Attempt
from .ssrf import AddressRefused, Network, check_url, guarded_client

USER_AGENT = "mpr-webhooks/1"
EXCERPT_BYTES = 512  # of a failed answer's body, for the log: never more is read


class Outcome(msgspec.Struct, kw_only=True):
    attempt: Attempt
    retry_after: str | None = None  # the answer's Retry-After header
    refused: bool = False  # the policy refused the address: final, never retried


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR_CHARS]


async def _excerpt(response: httpx.Response) -> str:
    got = b""
    async for chunk in response.aiter_raw():
        got += chunk
        if len(got) >= EXCERPT_BYTES:
            break
    return got[:EXCERPT_BYTES].decode("utf-8", "replace")


class Sender:
    def __init__(
        self,
        allowed: Sequence[Network],
        timeout: float,
        allow_http: bool,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_http = allow_http
        self.client = client or guarded_client(allowed, timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str], series: int = 0) -> Outcome:
        """Never raises for what the receiver or the network did: that is the outcome."""
        at, started = time.time(), time.monotonic()

        def outcome(status: int | None, error: str | None, **kw: object) -> Outcome:
            latency = round((time.monotonic() - started) * 1000, 1)
            attempt = Attempt(
                at=at,
                status_code=status,
                latency_ms=latency,
                error=_one_line(error) if error else None,
                series=series,
            )
            return Outcome(attempt=attempt, **kw)  # type: ignore[arg-type]

        sent = {
            **headers,
            "content-type": CONTENT_TYPE,
            "user-agent": USER_AGENT,
        }
        try:
            check_url(url, self.allow_http)  # again: the settings may have changed since it was made
            # One deadline for the whole attempt: httpx's are per phase, and a receiver that trickles
            # its answer a byte at a time would never meet them.
            async with asyncio.timeout(self.timeout):
                async with self.client.stream("POST", url, content=body, headers=sent) as response:
                    status = response.status_code
                    excerpt = "" if 200 <= status < 300 else await _excerpt(response)
        except AddressRefused as exc:
            return outcome(None, str(exc), refused=True)
        except TimeoutError:
            return outcome(None, f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return outcome(None, f"{type(exc).__name__}: {exc}".rstrip(": "))
        error = None
        if not 200 <= status < 300:
            error = f"HTTP {status}" + (f": {excerpt}" if excerpt.strip() else "")
            if 300 <= status < 400:
                error = f"HTTP {status}: redirects are not followed ({response.headers.get('location', '')})"
        return outcome(status, error, retry_after=response.headers.get("retry-after"))
