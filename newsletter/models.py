"""SQL tables for the vocabulary of DESIGN.md section 2, with the constraints idempotency needs.

Times are timezone-aware (SQLModel's UTCDateTime: `timestamptz` on PostgreSQL, UTC text on
SQLite) and come back in UTC; naive ones are refused (`newsletter.db.as_utc` at the boundary).
Free-form attributes are JSON. Every table has a surrogate integer primary key; the keys that
users and source systems know (`external_key`, `email`, names) carry unique constraints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

# Re-exported: the fixed values live in newsletter.enums (no SQL), beside their tables here.
from newsletter.enums import EVENT_KINDS as EVENT_KINDS
from newsletter.enums import INTERACTION_KINDS as INTERACTION_KINDS
from newsletter.enums import (
    ApiScope,
    Arm,
    Frequency,
    MessageStatus,
    Role,
    RunStatus,
    SubscriberStatus,
    TriggerStatus,
)
from newsletter.enums import ArtifactKind as ArtifactKind
from newsletter.enums import TriggerKind as TriggerKind

JSONDict = dict[str, Any]
# Named constraints, so migrations can address them the same way on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# SQLite only auto-increments "INTEGER PRIMARY KEY"; PostgreSQL gets a 64-bit key.
BIGINT_PK = BigInteger().with_variant(Integer(), "sqlite")


class Subscriber(SQLModel, table=True):
    """A person with an address, a status, a timezone, preferences and attributes."""

    id: int | None = Field(default=None, primary_key=True)
    external_key: str | None = Field(default=None, max_length=200, unique=True)
    email: str = Field(max_length=320, unique=True)
    name: str | None = Field(default=None, max_length=200)
    status: str = Field(default=SubscriberStatus.active, max_length=20, index=True)
    timezone: str = Field(default="UTC", max_length=64)
    locale: str | None = Field(default=None, max_length=20)
    frequency: str = Field(default=Frequency.weekly, max_length=20)
    topics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attributes: JSONDict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    updated_at: datetime
    # Field ownership (store.upsert): status changed, latest opt-in reported, preferences saved
    status_changed_at: datetime | None = None
    opted_in_at: datetime | None = None
    preferences_set_at: datetime | None = None


class Item(SQLModel, table=True):
    """Something we can recommend: an article, a product, a video."""

    id: int | None = Field(default=None, primary_key=True)
    external_key: str = Field(max_length=200, unique=True)
    title: str = Field(max_length=500)
    url: str = Field(max_length=2000)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    image_url: str | None = Field(default=None, max_length=2000)
    topics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attributes: JSONDict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    published_at: datetime | None = Field(default=None, index=True)
    expires_at: datetime | None = None
    active: bool = True
    updated_at: datetime


class ItemTopic(SQLModel, table=True):
    """One topic of one item, so SQL (segments, per-topic counts) can join on topics."""

    __tablename__ = "item_topic"
    item_id: int = Field(foreign_key="item.id", primary_key=True, ondelete="CASCADE")
    topic: str = Field(max_length=100, primary_key=True, index=True)


class Interaction(SQLModel, table=True):
    """A behaviour row: subscriber x item x kind x time (value: a rating, a quantity...)."""

    __table_args__ = (
        UniqueConstraint("subscriber_id", "item_id", "kind", "occurred_at", name="uq_interaction"),
        Index("ix_interaction_subscriber_time", "subscriber_id", "occurred_at"),
        Index("ix_interaction_item", "item_id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BIGINT_PK, primary_key=True))
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    item_id: int = Field(foreign_key="item.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)
    occurred_at: datetime
    value: float | None = None
    source: str = Field(default="import", max_length=50)
    # The events API's idempotency key: a repeated key is ignored (unique; NULLs never clash).
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)


class Segment(SQLModel, table=True):
    """A named rule selecting subscribers (YAML source; files in segments/ or edited in the UI)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", max_length=500)
    updated_at: datetime


class Template(SQLModel, table=True):
    """A named email template; its content lives in immutable versions."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    kind: str = Field(default="digest", max_length=20)
    current_version: int | None = None
    updated_at: datetime


class TemplateVersion(SQLModel, table=True):
    """One saved version of a template: MJML, subject, preheader and text sources."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("template_id", "version", name="uq_template_version"),)
    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="template.id", ondelete="CASCADE")
    version: int
    mjml: str = Field(sa_column=Column(Text, nullable=False))
    subject: str = Field(sa_column=Column(Text, nullable=False))
    preheader: str = Field(default="", sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    source_hash: str = Field(max_length=64)
    created_at: datetime
    author: str | None = Field(default=None, max_length=200)


class Campaign(SQLModel, table=True):
    """What to send to whom and when: a digest (on a schedule) or a trigger (on behaviour)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    kind: str = Field(default="digest", max_length=20)
    template_name: str = Field(max_length=100)
    segment_name: str = Field(default="everyone", max_length=100)
    schedule: str | None = Field(default=None, max_length=100)
    config: JSONDict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime


class Run(SQLModel, table=True):
    """One execution of a campaign for one scheduled time or trigger firing."""

    __table_args__ = (UniqueConstraint("campaign_id", "scheduled_for", name="uq_run_schedule"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    scheduled_for: datetime
    status: str = Field(default=RunStatus.planning, max_length=20)
    stats: JSONDict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    finished_at: datetime | None = None


class RunArtifact(SQLModel, table=True):
    """A run's versioned artifact (ArtifactKind; newsletter.store.artifacts), for any shard."""

    __tablename__ = "run_artifact"
    __table_args__ = (UniqueConstraint("run_id", "kind", name="uq_run_artifact"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)
    version: int
    digest: str = Field(max_length=64)  # sha256 of content: cache key and corruption check
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class RunArtifactPart(SQLModel, table=True):
    """A piece, in order, of an artifact too large for one value (PostgreSQL's limit: 1 GB)."""

    __tablename__ = "run_artifact_part"
    __table_args__ = (UniqueConstraint("artifact_id", "part", name="uq_run_artifact_part"),)
    id: int | None = Field(default=None, primary_key=True)
    artifact_id: int = Field(foreign_key="run_artifact.id", ondelete="CASCADE")
    part: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Message(SQLModel, table=True):
    """One email to one subscriber within a run; exactly one per (run, subscriber)."""

    __table_args__ = (
        UniqueConstraint("run_id", "subscriber_id", name="uq_message_run_subscriber"),
        Index("ix_message_run_status", "run_id", "status"),
        Index("ix_message_subscriber", "subscriber_id", "planned_for"),
    )
    id: int | None = Field(default=None, sa_column=Column(BIGINT_PK, primary_key=True))
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    arm: str = Field(default=Arm.personalized, max_length=20)
    status: str = Field(default=MessageStatus.planned, max_length=20)
    reason: str | None = Field(default=None, max_length=200)
    shard: int = 0
    planned_for: datetime
    subject: str | None = Field(default=None, max_length=500)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = None
    updated_at: datetime


class Slot(SQLModel, table=True):
    """One recommended item inside a message, with how and why it was chosen."""

    __table_args__ = (UniqueConstraint("message_id", "position", name="uq_slot_position"),)
    id: int | None = Field(default=None, sa_column=Column(BIGINT_PK, primary_key=True))
    message_id: int = Field(foreign_key="message.id", ondelete="CASCADE", index=True)
    position: int
    section: str = Field(default="top", max_length=100)
    item_id: int = Field(foreign_key="item.id", ondelete="CASCADE")
    source: str = Field(max_length=30)
    score: float
    propensity: float
    reason_kind: str = Field(max_length=30)
    reason_anchor: str | None = Field(default=None, max_length=500)
    reason_text: str = Field(max_length=500)


class Event(SQLModel, table=True):
    """Feedback on a message (open, click, unsubscribe, bounce...), flagged machine or human."""

    __table_args__ = (
        Index("ix_event_message", "message_id", "kind"),
        Index("ix_event_subscriber_time", "subscriber_id", "occurred_at"),
        # one unsubscribe event per message, however many one-click POSTs race
        Index(
            "uq_event_unsubscribe",
            "message_id",
            unique=True,
            sqlite_where=text("kind = 'unsubscribe'"),
            postgresql_where=text("kind = 'unsubscribe'"),
        ),
    )
    id: int | None = Field(default=None, sa_column=Column(BIGINT_PK, primary_key=True))
    message_id: int | None = Field(default=None, foreign_key="message.id", ondelete="SET NULL")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    slot_position: int | None = None
    item_id: int | None = Field(default=None, foreign_key="item.id", ondelete="SET NULL")
    kind: str = Field(max_length=20)
    occurred_at: datetime
    is_machine: bool = False
    machine_reason: str | None = Field(default=None, max_length=100)
    user_agent: str | None = Field(default=None, max_length=500)
    ip: str | None = Field(default=None, max_length=64)
    url: str | None = Field(default=None, max_length=2000)
    # Provider event id of a webhook or bounce report ("ses:..."): a redelivery is ignored.
    external_id: str | None = Field(default=None, max_length=200, unique=True)


class TriggerState(SQLModel, table=True):
    """One pending (or settled) firing of a trigger campaign for one subscriber. ``dedupe``
    names what fired (a cart row, a topic on a day, a welcome step) so evaluating the same
    behaviour twice -- two processes, a restart -- stores it once."""

    __tablename__ = "trigger_state"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id", "dedupe", name="uq_trigger_state"),
        Index("ix_trigger_state_due", "status", "due_at"),
        Index("ix_trigger_state_subscriber", "subscriber_id", "campaign_id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BIGINT_PK, primary_key=True))
    campaign_id: int = Field(foreign_key="campaign.id", ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    dedupe: str = Field(max_length=200)
    kind: str = Field(max_length=30)
    status: str = Field(default=TriggerStatus.pending, max_length=20)
    due_at: datetime
    context: JSONDict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    run_id: int | None = Field(default=None, foreign_key="run.id", ondelete="SET NULL")
    reason: str | None = Field(default=None, max_length=100)
    created_at: datetime
    updated_at: datetime


class Assignment(SQLModel, table=True):
    """The experiment arm of a subscriber, recorded the first time it is used (sticky)."""

    __table_args__ = (UniqueConstraint("experiment", "subscriber_id", name="uq_assignment"),)
    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=100)
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    arm: str = Field(max_length=20)
    assigned_at: datetime


class Suppression(SQLModel, table=True):
    """An address we never send to again (unsubscribed, bounced, complained, imported list)."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    reason: str = Field(max_length=50)
    created_at: datetime


class SyncState(SQLModel, table=True):
    """The watermark of one entity of one external source, for incremental sync."""

    __tablename__ = "sync_state"
    source: str = Field(max_length=100, primary_key=True)
    entity: str = Field(max_length=30, primary_key=True)
    watermark: str | None = Field(default=None, max_length=100)
    rows_loaded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime


class TemplatePublication(SQLModel, table=True):
    """One publish of a template version (the newest one is ``Template.current_version``)."""

    __tablename__ = "template_publication"
    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="template.id", ondelete="CASCADE", index=True)
    version: int
    published_at: datetime
    published_by: str | None = Field(default=None, max_length=320)


class AdminUser(SQLModel, table=True):
    """A person who signs in to the web UI (password hashed with argon2id)."""

    __tablename__ = "admin_user"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=300)
    role: str = Field(default=Role.viewer, max_length=20)
    active: bool = True
    created_at: datetime
    last_login_at: datetime | None = None


class AdminSession(SQLModel, table=True):
    """A signed-in browser: the cookie's SHA-256 (never the cookie) and its CSRF token."""

    __tablename__ = "admin_session"
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="admin_user.id", ondelete="CASCADE", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    user_agent: str | None = Field(default=None, max_length=300)


class LoginAttempt(SQLModel, table=True):
    """A failed sign-in, counted per address and per client IP for the login rate limit."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_time", "email", "occurred_at"),
        Index("ix_login_attempt_ip_time", "ip", "occurred_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    ip: str | None = Field(default=None, max_length=64)
    occurred_at: datetime


class ApiKey(SQLModel, table=True):
    """A key for the HTTP API: only its SHA-256 is stored; the key is shown once at creation."""

    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    prefix: str = Field(max_length=20)
    key_hash: str = Field(max_length=64, unique=True)
    scope: str = Field(default=ApiScope.events, max_length=20)
    rate_limit: int | None = None  # requests per minute; None = the configured default
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
