"""Per-job callback credentials for jobs run outside the transcoders (the Lambda handler): a token
bound to one job id and an expiry, issued when the job is dispatched, signed with the API's
``API_CALLBACK_SECRET``. An API token is not accepted on the callback route, and no token exists for
a job that was not dispatched there."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

# An expiry is a Unix time in seconds: ASCII digits, and few of them. A bound before int(), which
# refuses (ValueError) more than 4,300 digits, and before comparing the MAC, which refuses (TypeError)
# a str that is not ASCII: neither may become a 500.
_EXPIRES = re.compile(r"[0-9]{1,12}")
_MAC = re.compile(r"[0-9a-f]{64}")


class CallbackTokens:
    def __init__(self, secret: bytes, ttl: float) -> None:
        self.secret = secret
        self.ttl = ttl

    def _mac(self, job_id: str, expires: int) -> str:
        return hmac.new(self.secret, f"{job_id}\x00{expires}".encode(), hashlib.sha256).hexdigest()

    def issue(self, job_id: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.ttl)
        return f"{expires}.{self._mac(job_id, expires)}"

    def valid(self, job_id: str, token: str, now: float | None = None) -> bool:
        expires_text, _, mac = token.partition(".")
        if not _EXPIRES.fullmatch(expires_text) or not _MAC.fullmatch(mac):
            return False
        expires = int(expires_text)
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(mac, self._mac(job_id, expires))
