"""The tables of docs/architecture.md as SQLAlchemy 2.0 typed models, for SQLite, MariaDB/MySQL
and PostgreSQL.

The revisions of sql/migrations/ build these tables; tests/test_schema.py proves the two agree
(`alembic check`) and that sql/schema.*.sql are what the revisions render.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, Enum, ForeignKey, Index, Integer, MetaData, String, Text,
    Table, TypeDecorator, false, text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.statuses import (
    AccountStatus, DeliveryStatus, JobStatus, Outcome, Platform, PostStatus, QueueStatus,
)



class UTCDateTime(TypeDecorator):
    """DATETIME(6) holding UTC. Python sees aware UTC datetimes; the column holds naive UTC.

    MySQL's DATETIME has no zone, so the zone is stripped on the way in and put back on the way
    out; a naive value handed in is refused, because guessing its zone is how posts go out late.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


def new_uuid() -> str:
    return str(uuid.uuid4())


def _enum(name: str, values: type[StrEnum]) -> Enum:
    """A database ENUM of the members' values (plain strings in and out), in their order."""
    return Enum(*[member.value for member in values], name=name, native_enum=True, create_constraint=False, validate_strings=True)


# BIGINT AUTO_INCREMENT on MySQL, BIGSERIAL on PostgreSQL; INTEGER PRIMARY KEY (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")
Uuid36 = String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
# Text a user or a platform writes: MySQL's TEXT stops at 65,535 bytes, less than 30,000 CJK
# characters (a Facebook post may hold 63,206), so MEDIUMTEXT there; TEXT has no such limit elsewhere.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


# Named constraints, so every engine and sql/schema.*.sql spell the same names.
NAMING = {"ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s", "pk": "pk_%(table_name)s"}
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
               "mysql_collate": "utf8mb4_unicode_ci"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # The options dict here; a model with indexes gives a tuple of them ending in the dict.
    __table_args__: Any = MYSQL_TABLE
    # Every model maps a Table (DeclarativeBase types it as the wider FromClause).
    __table__: ClassVar[Table]


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), server_default=text("'UTC'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SocialAccount(Base):
    __tablename__ = "social_accounts"
    __table_args__ = (
        Index("uq_social_accounts_external", "company_id", "platform", "external_id", unique=True),
        MYSQL_TABLE,
    )

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    platform: Mapped[str] = mapped_column(_enum("platform", Platform))
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        _enum("account_status", AccountStatus), server_default=text(f"'{AccountStatus.ACTIVE}'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Since 0009 (connect flows and refresh): NULL for a pasted token.
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str | None] = mapped_column(String(1024))  # as granted, space-separated
    # Per-platform facts a refresh or a publish needs (a Mastodon instance, a Bluesky PDS).
    auth_meta: Mapped[dict | None] = mapped_column(JSON)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When account.token_expiring was raised for the current token (once per token).
    expiring_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(String(1024))  # why it needs reconnecting


class PostDetail(Base):
    __tablename__ = "post_details"
    __table_args__ = (
        Index("ix_post_details_company_status", "company_id", "status"),
        Index("ix_post_details_idempotency", "company_id", "idempotency_key"),
        MYSQL_TABLE,
    )

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    social_account_id: Mapped[str] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[str] = mapped_column(Uuid36, index=True)
    content: Mapped[str] = mapped_column(LongText)
    media_urls: Mapped[list] = mapped_column(JSON)
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        _enum("post_status", PostStatus), server_default=text(f"'{PostStatus.PENDING}'"))
    platform_post_id: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(LongText)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Published again by evergreen rotation; the copies a rotation makes name their source.
    evergreen: Mapped[bool] = mapped_column(Boolean, server_default=false())
    evergreen_source_id: Mapped[str | None] = mapped_column(
        ForeignKey("post_details.id", ondelete="SET NULL"), index=True)

    schedule: Mapped["PostSchedule"] = relationship(back_populates="post", uselist=False)
    account: Mapped[SocialAccount] = relationship()


class PostSchedule(Base):
    __tablename__ = "post_schedule"
    # The due query (status = 'pending' AND run_at <= now ORDER BY run_at, id) is a range
    # scan of this index with no filesort, whatever the size of the done/failed history.
    __table_args__ = (Index("ix_post_schedule_due", "status", "run_at", "id"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_detail_id: Mapped[str] = mapped_column(
        ForeignKey("post_details.id", ondelete="CASCADE"), unique=True)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        _enum("schedule_status", QueueStatus), server_default=text(f"'{QueueStatus.PENDING}'"))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lock_token: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    deferrals: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(LongText)
    # An unpublished object an earlier attempt made on the platform (an Instagram media
    # container): the next attempt reuses it instead of making a second one.
    platform_draft_id: Mapped[str | None] = mapped_column(String(255))
    # The run_at the first rate-limit deferral moved: deferrals stop 24 h after it.
    deferred_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when recovery found an attempt whose outcome is unknown (it started then): the next
    # attempt first looks for the post on the platform. Cleared once it has looked.
    unknown_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    post: Mapped[PostDetail] = relationship(back_populates="schedule")


class PublishAttempt(Base):
    __tablename__ = "publish_attempts"
    __table_args__ = (Index("ix_publish_attempts_schedule", "post_schedule_id", "attempt"),
                      MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_schedule_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("post_schedule.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # NULL while the attempt is in flight; `unknown` once recovery finds its worker gone.
    outcome: Mapped[str | None] = mapped_column(_enum("attempt_outcome", Outcome))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(LongText)


class WorkerRun(Base):
    __tablename__ = "worker_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    worker_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recovered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    claimed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    published: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    retried: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    deferred: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class IdempotencyKey(Base):
    """The first answer to a request carrying an Idempotency-Key, kept to answer its repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("uq_idempotency_keys_company_key", "company_id", "key_hash", unique=True),
        MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256: exact, case-sensitive match
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Job(Base):
    """Background work other than publishing (kinds: prune, later refresh_token,
    deliver_webhook, ...), claimed with the same SKIP LOCKED / fencing code as post_schedule."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "run_at", "id"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str | None] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        _enum("job_status", JobStatus), server_default=text(f"'{JobStatus.PENDING}'"))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lock_token: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    last_error: Mapped[str | None] = mapped_column(Text)
    # One job per key at most (e.g. "prune:2026-11-23"): two workers enqueueing it race harmlessly.
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Webhook(Base):
    """A company's endpoint for events; the signing secret is sealed like an access token.
    A deleted webhook keeps its row (disabled_at set) until the company goes."""

    __tablename__ = "webhooks"
    __table_args__ = MYSQL_TABLE

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list] = mapped_column(JSON)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event for one webhook: its body as sent, and where its delivery stands (the
    deliver_webhook job that carries it holds the next attempt's time)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
                      MYSQL_TABLE)

    # Made by the code, not the database, so a batch of events is one multi-row INSERT.
    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(
        _enum("delivery_status", DeliveryStatus), server_default=text(f"'{DeliveryStatus.PENDING}'"))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)



class OAuthState(Base):
    """A connect flow between its start and its callback: single use, bound to the company,
    expiring; only the state's hash is kept, and the PKCE verifier is sealed."""

    __tablename__ = "oauth_states"
    __table_args__ = MYSQL_TABLE

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    verifier_encrypted: Mapped[str | None] = mapped_column(Text)
    # What the callback needs besides the code: the redirect URI sent, a clientId, an instance.
    extras: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthApp(Base):
    """Client credentials a platform issued to this scheduler at run time (Mastodon registers
    an app once per instance); the secret is sealed."""

    __tablename__ = "oauth_apps"
    __table_args__ = (
        Index("uq_oauth_apps_platform_instance", "platform", "instance", unique=True), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    instance: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PostMetrics(Base):
    """A published post's engagement at one checkpoint (1h, 24h, 7d after publishing), as its
    platform counted it; a count the platform does not give is NULL. `raw` is its answer."""

    __tablename__ = "post_metrics"
    __table_args__ = (Index("uq_post_metrics_checkpoint", "post_detail_id", "checkpoint",
                            unique=True), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_detail_id: Mapped[str] = mapped_column(ForeignKey("post_details.id", ondelete="CASCADE"))
    checkpoint: Mapped[str] = mapped_column(String(8))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    impressions: Mapped[int | None] = mapped_column(BigInteger)
    likes: Mapped[int | None] = mapped_column(BigInteger)
    comments: Mapped[int | None] = mapped_column(BigInteger)
    shares: Mapped[int | None] = mapped_column(BigInteger)
    saves: Mapped[int | None] = mapped_column(BigInteger)
    clicks: Mapped[int | None] = mapped_column(BigInteger)
    raw: Mapped[dict] = mapped_column(JSON)


class EvergreenRule(Base):
    """A company's standing rotation: `per_week` evergreen posts a week on these accounts,
    scheduled by a weekly evergreen job."""

    __tablename__ = "evergreen_rules"
    __table_args__ = MYSQL_TABLE

    id: Mapped[str] = mapped_column(Uuid36, primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    account_ids: Mapped[list] = mapped_column(JSON)
    per_week: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
