"""What webhooks store (subscriptions in their KV bucket, deliveries in the log stream and the tasks
stream), what the API answers, and which events a subscription wants."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args

import msgspec

from mpr_common.events import JobKind
from mpr_common.job_status import TERMINAL_STATUSES

from ..http.limits import MAX_KEY_CHARS

EventType = Literal[
    "job.queued", "job.playable", "job.completed", "job.failed", "job.cancelled", "asset.registered"
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# status a job ended in -> the type of its event ("job.<status>")
ENDED_TYPES: dict[str, EventType] = {st: cast(EventType, f"job.{st}") for st in TERMINAL_STATUSES}
assert set(ENDED_TYPES.values()) <= set(EVENT_TYPES), "every way a job ends is an event type"
# pending: waiting for its first attempt of a (re)delivery; retrying: an attempt failed, another is
# due at next_attempt_at; delivered: 2xx; dead: given up (final answer or attempts exhausted),
# dead-lettered; skipped: its subscription was paused before it could be sent.
DeliveryState = Literal["pending", "retrying", "delivered", "dead", "skipped"]
DELIVERY_STATES: tuple[str, ...] = get_args(DeliveryState)

MAX_SUBSCRIPTIONS = 100  # per installation: every event is matched against each one
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 200
MAX_ATTEMPTS_KEPT = 20  # in a delivery's log record (redeliveries add theirs)
MAX_ERROR_CHARS = 300
ID_PATTERN = "^[0-9a-f]{32}$"  # subscription and delivery ids (subject tokens)

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=MAX_URL_CHARS)]
Types = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=len(EVENT_TYPES))]
Kinds = Annotated[list[JobKind], msgspec.Meta(max_length=16)]
KeyPrefix = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION_CHARS)]


class Occurrence(msgspec.Struct, kw_only=True, frozen=True):
    """A job or asset event as webhooks see it, before it becomes one subscription's CloudEvent."""

    type: EventType
    fact: str  # what happened, stably named: the same fact read twice gives the same delivery id
    subject: str  # CloudEvent subject: the job id, or the asset's key
    source: str  # CloudEvent source
    time: float
    data: dict[str, Any]
    stream: str  # where it was read, and at which sequence (subscriptions start after theirs)
    seq: int
    kind: str | None = None  # for the filters: the job's kind …
    key: str | None = None  # … and the job's source key or the asset's key


class Subscription(msgspec.Struct, kw_only=True):
    """One webhook subscription, as stored under its id in WEBHOOKS_KV. Its secrets are sealed
    (:mod:`.sealing`, bound to its id: only the API opens them, to sign) and only the API's NATS identity
    may read that bucket."""

    v: int = 1
    id: str
    url: str
    types: list[str]
    kinds: list[str] = msgspec.field(default_factory=list)
    key_prefix: str = ""
    description: str = ""
    active: bool = True
    created_at: float
    secret: str
    # After a rotation the old secret keeps signing (a second signature) until this time.
    previous_secret: str | None = None
    previous_secret_until: float = 0.0
    secret_rotated_at: float | None = None
    # Each source stream's last sequence when the subscription was made: it gets what came after.
    start_seqs: dict[str, int] = msgspec.field(default_factory=dict)

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets that sign now (sealed, as stored), current first."""
        if self.previous_secret and now < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


def matches(sub: Subscription, occ: Occurrence) -> bool:
    """Whether ``sub`` wants ``occ``: active, of a type it names, of a job kind it names (if it names
    any), under its key prefix (if it has one), and after it was made."""
    return (
        sub.active
        and occ.type in sub.types
        and (not sub.kinds or occ.kind in sub.kinds)
        and (not sub.key_prefix or (occ.key is not None and occ.key.startswith(sub.key_prefix)))
        and occ.seq > sub.start_seqs.get(occ.stream, 0)
    )


class Attempt(msgspec.Struct, kw_only=True, omit_defaults=True):
    at: float
    status_code: int | None = None  # None: no answer (network error, timeout, refused address)
    latency_ms: float = 0.0
    error: str | None = None
    series: int = 0  # 0: the first delivery, n: the n-th redelivery


class Delivery(msgspec.Struct, kw_only=True):
    """One CloudEvent for one subscription. The same struct is the task (WEBHOOK_TASKS: the attempt
    that is due, not before ``not_before``) and the log record (the latest state of the delivery, one
    message per delivery in WEBHOOKS_STREAM)."""

    v: int = 1
    id: str  # = the CloudEvent id = webhook-id: stable per (event, subscription)
    subscription_id: str
    type: str
    subject: str
    event: msgspec.Raw  # the CloudEvent's JSON, sent byte for byte on every attempt
    state: DeliveryState = "pending"
    series: int = 0
    attempt: int = 1  # task: the attempt it is (1-based, within its series)
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    not_before: float = 0.0  # task: when it is due; record (retrying): when the next attempt is
    created_at: float
    updated_at: float


# --- REST and GraphQL bodies ----------------------------------------------------------------
class WebhookCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    types: Types
    kinds: Kinds = msgspec.field(default_factory=list)  # job events of these kinds only
    key_prefix: KeyPrefix = ""  # jobs whose source key, assets whose key starts with it
    description: Description = ""


class WebhookUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url | None = None
    types: Types | None = None
    kinds: Kinds | None = None
    key_prefix: KeyPrefix | None = None
    description: Description | None = None
    active: bool | None = None  # false: events are not sent (nor kept for later) until true again


class WebhookOut(msgspec.Struct, kw_only=True):
    id: str
    url: str
    types: list[str]
    kinds: list[str]
    key_prefix: str
    description: str
    active: bool
    created_at: float
    secret_rotated_at: float | None = None

    @classmethod
    def of(cls, s: Subscription) -> WebhookOut:
        return cls(
            id=s.id,
            url=s.url,
            types=s.types,
            kinds=s.kinds,
            key_prefix=s.key_prefix,
            description=s.description,
            active=s.active,
            created_at=s.created_at,
            secret_rotated_at=s.secret_rotated_at,
        )


class WebhookSecret(msgspec.Struct, kw_only=True):
    """Shown once: store it where the receiver can read it."""

    secret: str
    previous_valid_until: float | None = None  # the rotated-out secret still signs until then


class WebhookCreated(msgspec.Struct, kw_only=True):
    webhook: WebhookOut
    secret: str  # shown once


class WebhookList(msgspec.Struct, kw_only=True):
    items: list[WebhookOut]


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: str
    subscription_id: str
    type: str
    subject: str
    state: str
    attempts: list[Attempt]
    next_attempt_at: float | None
    redeliveries: int
    created_at: float
    updated_at: float
    event: dict[str, Any]  # the CloudEvent as sent

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            subscription_id=d.subscription_id,
            type=d.type,
            subject=d.subject,
            state=d.state,
            attempts=d.attempts,
            next_attempt_at=d.not_before if d.state in ("retrying", "pending") and d.not_before else None,
            redeliveries=d.series,
            created_at=d.created_at,
            updated_at=d.updated_at,
            event=msgspec.json.decode(d.event),
        )


class DeliveryPage(msgspec.Struct, kw_only=True):
    """Deliveries in the order they last changed (the log keeps each one's latest state only, so a
    delivery retried after it was listed is listed again further on, in its new state)."""

    items: list[DeliveryOut]
    next_after: int  # pass as ``after`` for what changed since this page
    more: bool  # whether more had changed already when this page was read
