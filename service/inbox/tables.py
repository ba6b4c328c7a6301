"""The inbox's tables (SQLAlchemy 2). Schema changes go through Alembic migrations in migrations/versions/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OPEN = "open"
RESOLUTIONS = ("responded", "dismissed", "escalated")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive; this puts UTC back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the inbox stores UTC-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Item(Base):
    """One post in the queue: the post as received, what the model said, the policy's decision and its SLA clock."""

    __tablename__ = "inbox_items"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), doc="sha256 of the post's identity fields (see ingest)")
    post: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the post exactly as first received")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    clock_start: Mapped[datetime] = mapped_column(UTCDateTime, doc="created_at, or ingested_at when absent")

    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(200))
    predictions: Mapped[dict[str, Any]] = mapped_column(JSON, doc="task -> {label, probabilities}")
    intent: Mapped[str] = mapped_column(String(64))
    sentiment: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(64))
    needs_response: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime)

    sla_minutes: Mapped[float | None] = mapped_column(Float)
    at_risk_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_inbox_items_open_order", "status", "priority", "clock_start"),
        Index("ix_inbox_items_status_due", "status", "due_at"),
        Index("ix_inbox_items_status_route", "status", "route"),
    )


class Feedback(Base):
    """A person's corrected labels for an item (task -> label); the latest correction per task wins on export."""

    __tablename__ = "inbox_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("inbox_items.id", ondelete="CASCADE"), index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
