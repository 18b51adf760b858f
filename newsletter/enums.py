"""The vocabulary's fixed values: statuses, arms, kinds and roles, as StrEnums and tuples.

Kernel module without SQL, so any layer can name a status; `newsletter.models` re-exports
them beside the tables that store them.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"
    placeholder = "placeholder"  # created by the events API for an unknown key; never mailed
    erased = "erased"  # personal data erased on request (GDPR); never mailed


class Frequency(StrEnum):
    weekly = "weekly"
    monthly = "monthly"
    paused = "paused"


class MessageStatus(StrEnum):
    planned = "planned"
    rendered = "rendered"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class ApiScope(StrEnum):
    """What an API key may do: ``events`` (events, upserts) or ``admin`` (also erasure)."""

    events = "events"
    admin = "admin"


class RunStatus(StrEnum):
    """A run's life: planning -> planned -> delivering -> waiting | paused | delivered.

    ``held`` and ``cancelled`` are a person's decision (the web UI) and stand until a person
    changes them; ``paused`` is the delivery loop's (mail server unreachable)."""

    planning = "planning"  # created; its plan is not complete yet
    planned = "planned"  # every member has a message (planned or skipped)
    delivering = "delivering"  # a delivery pass is under way
    waiting = "waiting"  # what was due is sent; the rest waits for its local send time
    paused = "paused"  # the mail server could not be reached; resume later
    held = "held"  # paused by a person: nothing is sent until they resume it
    cancelled = "cancelled"  # stopped by a person: its unsent messages are skipped
    delivered = "delivered"  # nothing left to send


class ArtifactKind(StrEnum):
    """What a run persists so that any process can work on any of its shards."""

    plan = "plan"  # JSON: the run's frozen parameters (campaign config, shards, prepared_at...)
    members = "members"  # .npy int64: the subscriber ids the segment selected at preparation
    model = "model"  # the fitted slot source, id maps and Thompson bank (recommend.artifact)
    delivery = "delivery"  # JSON: the current delivery pass (its time and DeliveryPolicy)


class TriggerStatus(StrEnum):
    """A pending trigger state's life: pending -> fired | cancelled (its 'unless' happened)."""

    pending = "pending"  # waiting for its due time (or for the sweep)
    fired = "fired"  # a message (planned, or skipped with its reason) answers it
    cancelled = "cancelled"  # the cancelling behaviour happened (a purchase of the item)


class TriggerKind(StrEnum):
    """The shipped behavioural rules (see newsletter.triggers.rules)."""

    abandoned_cart = "abandoned_cart"
    topic_reads = "topic_reads"
    welcome = "welcome"


class Arm(StrEnum):
    personalized = "personalized"
    popular = "popular"
    control = "control"


class Role(StrEnum):
    """What a web UI user may do: viewers read, editors edit and test-send, admins publish
    and manage campaigns."""

    viewer = "viewer"
    editor = "editor"
    admin = "admin"


INTERACTION_KINDS = ("view", "read", "click", "like", "cart", "purchase", "rating")
EVENT_KINDS = (
    "delivered",
    "open",
    "click",
    "unsubscribe",
    "bounce",
    "soft_bounce",
    "complaint",
    "honeypot",
)
