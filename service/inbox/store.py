"""Reading and writing inbox items. Every change is one transaction, committed before the API answers.

Queue order ("most urgent first"): overdue items first, then higher priority, then the older clock start (the author
who has waited longer), then post id, so the order is total and pages never overlap. Pages are keyset pages: the cursor
carries the last item's sort key and the listing's `as_of` time, which fixes which items count as overdue and hides
items ingested after the first page, so paging stays stable while posts keep arriving.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from service.inbox.sla import SlaState
from service.inbox.tables import OPEN, Feedback, Item


class NotFound(LookupError):
    pass


class ResolveConflict(ValueError):
    """The item was already resolved differently."""


class CursorError(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    as_of: datetime
    overdue: int
    priority: float
    clock_start: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.as_of.isoformat(), self.overdue, self.priority, self.clock_start.isoformat(), self.id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            as_of, overdue, priority, clock_start, item_id = json.loads(raw)
            cursor = cls(datetime.fromisoformat(as_of), int(overdue), float(priority),
                         datetime.fromisoformat(clock_start), str(item_id))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as err:
            raise CursorError("not a cursor this server issued (use next_cursor from a previous page)") from err
        if cursor.as_of.tzinfo is None or cursor.clock_start.tzinfo is None:
            raise CursorError("not a cursor this server issued (times without a timezone)")
        return cursor


@dataclass
class Filters:
    route: Sequence[str] = ()
    tier: Sequence[str] = ()
    intent: Sequence[str] = ()
    needs_response: bool | None = None
    sla: Sequence[SlaState] = ()


@dataclass
class Page:
    items: list[Item]
    as_of: datetime
    next_cursor: str | None


@dataclass
class QueueCounts:
    open: dict[tuple[str, str], int] = field(default_factory=dict)
    overdue: dict[tuple[str, str], int] = field(default_factory=dict)


def _overdue(as_of: datetime) -> ColumnElement[int]:
    return case((and_(Item.due_at.is_not(None), Item.due_at <= as_of), 1), else_=0)


def _sla_condition(state: SlaState, now: datetime) -> ColumnElement[bool]:
    if state == "none":
        return Item.due_at.is_(None)
    if state == "overdue":
        return Item.due_at <= now
    if state == "at_risk":
        return and_(Item.at_risk_at <= now, Item.due_at > now)
    return and_(Item.due_at > now, or_(Item.at_risk_at.is_(None), Item.at_risk_at > now))


class InboxStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def fingerprints(self, ids: Sequence[str]) -> dict[str, str]:
        with self.session() as session:
            rows = session.execute(select(Item.id, Item.fingerprint).where(Item.id.in_(ids)))
            return {item_id: fingerprint for item_id, fingerprint in rows}

    def insert(self, items: Sequence[Item]) -> None:
        """All or nothing; raises sqlalchemy.exc.IntegrityError when another request stored one of the ids first."""
        with self.session() as session, session.begin():
            session.add_all(items)

    def get(self, item_id: str) -> Item:
        with self.session() as session:
            item = session.get(Item, item_id)
            if item is None:
                raise NotFound(item_id)
            return item

    def get_many(self, ids: Sequence[str]) -> dict[str, Item]:
        with self.session() as session:
            return {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(ids)))}

    def page(self, filters: Filters, limit: int, now: datetime, cursor: Cursor | None = None) -> Page:
        as_of = cursor.as_of if cursor else now
        overdue = _overdue(as_of)
        query = select(Item, overdue).where(Item.status == OPEN, Item.ingested_at <= as_of)
        for column, wanted in ((Item.route, filters.route), (Item.tier, filters.tier), (Item.intent, filters.intent)):
            if wanted:
                query = query.where(column.in_(wanted))
        if filters.needs_response is not None:
            query = query.where(Item.needs_response.is_(filters.needs_response))
        if filters.sla:
            query = query.where(or_(*(_sla_condition(state, as_of) for state in filters.sla)))
        if cursor is not None:
            same_o = overdue == cursor.overdue
            same_p = and_(same_o, Item.priority == cursor.priority)
            same_c = and_(same_p, Item.clock_start == cursor.clock_start)
            query = query.where(or_(
                overdue < cursor.overdue,
                and_(same_o, Item.priority < cursor.priority),
                and_(same_p, Item.clock_start > cursor.clock_start),
                and_(same_c, Item.id > cursor.id),
            ))
        query = query.order_by(overdue.desc(), Item.priority.desc(), Item.clock_start.asc(), Item.id.asc())
        with self.session() as session:
            rows = session.execute(query.limit(limit + 1)).all()
        items = [item for item, _ in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last, last_overdue = rows[limit - 1]
            next_cursor = Cursor(as_of, int(last_overdue), last.priority, last.clock_start, last.id).encode()
        return Page(items, as_of, next_cursor)

    def resolve(self, item_id: str, action: str, actor: str, note: str | None, now: datetime) -> tuple[Item, bool]:
        """Close an open item; repeating the same resolution is a no-op (changed False), a different one a conflict."""
        with self.session() as session, session.begin():
            item = session.get(Item, item_id, with_for_update=True)
            if item is None:
                raise NotFound(item_id)
            if item.status != OPEN:
                if item.status == action:
                    return item, False
                raise ResolveConflict(f"item {item_id!r} was already resolved as {item.status} by {item.resolved_by}"
                                      f" at {item.resolved_at.isoformat() if item.resolved_at else '?'}")
            item.status, item.resolved_by, item.resolved_at, item.resolution_note = action, actor, now, note
            return item, True

    def add_feedback(self, item_id: str, labels: dict[str, str], note: str | None, actor: str,
                     now: datetime) -> Feedback:
        with self.session() as session, session.begin():
            if session.get(Item, item_id) is None:
                raise NotFound(item_id)
            feedback = Feedback(item_id=item_id, labels=labels, note=note, actor=actor, created_at=now)
            session.add(feedback)
        return feedback

    def open_after(self, after_id: str | None, limit: int) -> list[Item]:
        """Open items in id order, from after `after_id`: how rescoring walks the queue in chunks."""
        query = select(Item).where(Item.status == OPEN)
        if after_id is not None:
            query = query.where(Item.id > after_id)
        with self.session() as session:
            return list(session.scalars(query.order_by(Item.id).limit(limit)))

    def update_scores(self, changes: Sequence[dict[str, Any]]) -> int:
        """Write new scores for items still open (one transaction); returns how many were updated."""
        updated = 0
        with self.session() as session, session.begin():
            for change in changes:
                item = session.get(Item, change["id"], with_for_update=True)
                if item is None or item.status != OPEN:
                    continue  # resolved meanwhile: its score no longer matters
                for key, value in change.items():
                    setattr(item, key, value)
                updated += 1
        return updated

    def corrected(self) -> Iterator[tuple[Item, dict[str, str], str, datetime]]:
        """Each item with human feedback: its latest label per task, who gave the last one, and when."""
        with self.session() as session:
            ids = session.scalars(select(Feedback.item_id).distinct().order_by(Feedback.item_id)).all()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                items = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(chunk)))}
                rows = session.scalars(select(Feedback).where(Feedback.item_id.in_(chunk))
                                       .order_by(Feedback.item_id, Feedback.created_at, Feedback.id))
                merged: dict[str, tuple[dict[str, str], str, datetime]] = {}
                for row in rows:
                    labels, _, _ = merged.get(row.item_id, ({}, "", row.created_at))
                    merged[row.item_id] = ({**labels, **row.labels}, row.actor, row.created_at)
                for item_id in chunk:
                    labels, actor, at = merged[item_id]
                    yield items[item_id], labels, actor, at

    def queue_counts(self, now: datetime) -> QueueCounts:
        overdue = func.sum(_overdue(now))
        query = (select(Item.route, Item.tier, func.count(), overdue)
                 .where(Item.status == OPEN).group_by(Item.route, Item.tier))
        counts = QueueCounts()
        with self.session() as session:
            for route, tier, total, late in session.execute(query):
                counts.open[(route, tier)] = int(total)
                counts.overdue[(route, tier)] = int(late or 0)
        return counts


class QueueCollector:
    """Prometheus gauges read from the database at scrape time: open and overdue items per route and tier."""

    def __init__(self, store: InboxStore, now: Callable[[], datetime]):
        self._store, self._now = store, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._store.queue_counts(self._now())
        families = (
            GaugeMetricFamily("triage_inbox_open_items", "Open inbox items", labels=["route", "tier"]),
            GaugeMetricFamily("triage_inbox_overdue_items", "Open inbox items past their SLA due time",
                              labels=["route", "tier"]),
        )
        for family, values in zip(families, (counts.open, counts.overdue), strict=True):
            for (route, tier), value in sorted(values.items()):
                family.add_metric([route, tier], value)
            yield family
