"""Which answers are retried, and when: exponential backoff with jitter, ``Retry-After`` honoured.

2xx is delivered. Network errors, timeouts, 408, 429 and 5xx are worth another attempt: the receiver
may be restarting or overloaded. Every other status (3xx: redirects are not followed; 4xx: the receiver
refuses this request) is final: sending the same request again would get the same answer."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from typing import Literal

Verdict = Literal["delivered", "retry", "final"]
RETRIED_STATUSES = frozenset({408, 429})


def verdict(status: int | None) -> Verdict:
    """``None``: no answer at all (network error or timeout)."""
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if status in RETRIED_STATUSES or status >= 500:
        return "retry"
    return "final"


def retry_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``base * 2**(attempt-1)``
    capped at ``cap``, of which half is fixed and half random ("equal jitter"): retries never bunch
    up at zero, and the senders a recovering receiver sees do not all come back at the same moment."""
    full = min(cap, base * 2 ** (attempt - 1))
    return full / 2 + rand() * full / 2


def retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: delta-seconds or an HTTP-date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT
        return None
    return max(0.0, when.timestamp() - now)


def next_delay(
    attempt: int,
    retry_after_header: str | None,
    base: float,
    cap: float,
    now: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """The backoff delay, or the receiver's ``Retry-After`` when it asks for longer (never beyond
    ``cap``: a receiver cannot park a delivery for days)."""
    delay = retry_delay(attempt, base, cap, rand)
    asked = retry_after(retry_after_header, now)
    return delay if asked is None else max(delay, min(asked, cap))
