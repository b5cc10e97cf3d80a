"""Data at rest: retention by kind, one teacher's data exported or erased, and an audit log of each.

Retention (`settings.retention`, days; 0 keeps) is applied by `Retention.purge`, which the running
processes call once a day (`RetentionWorker`) and `coach privacy purge` calls on demand:

| kind | what goes |
|---|---|
| turns | conversation turns older than `turns_days`, their Teams reply cards, model-usage rows |
| inbound | Slack events recorded for crash recovery, and dedupe keys, older than `inbound_days` |
| feedback | button clicks older than `feedback_days` |
| resolved_escalations | escalations resolved more than `resolved_escalations_days` ago, with their delivery rows |
| outbox | the message body of deliveries made more than `outbox_days` ago (the delivery record stays) |

A teacher's data is found by their platform user id, table by table, over the tables the
database actually has (reflected, so a table added later by another module is still scanned
for a `user_id` column and for the id as a JSON value). Every export, erase and purge writes a
row to `privacy_audit` with counts; the teacher's id is kept there only as a SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, MetaData, String, Table, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.handoff.escalations import EscalationStatus
from bot.settings import RetentionSettings
from bot.state.database import Base, StateDB, aware, rows_changed, utcnow

log = logging.getLogger(__name__)

# Tables that never hold a teacher's data, or must outlive an erase (the audit itself).
NOT_PERSONAL = frozenset({"alembic_version", "privacy_audit"})
PURGE_EVERY = timedelta(days=1)


class AuditAction(StrEnum):
    """What a privacy audit row records."""

    EXPORT = "export"
    ERASE = "erase"
    PURGE = "purge"


class PrivacyAuditRow(Base):
    """One export, erase or purge: when, by whom, about whom (a digest), and how many rows."""

    __tablename__ = "privacy_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(64), default="")  # sha256 of the user id; "" for a purge
    actor: Mapped[str] = mapped_column(String(200), default="")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


def subject_digest(user_id: str) -> str:
    """How the audit log names a teacher: enough to answer "was X erased?", not to read X back."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def _json_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.replace(tzinfo=v.tzinfo or timezone.utc).isoformat() if isinstance(v, datetime) else v)
            for k, v in row.items()}


@dataclass
class SubjectReport:
    """What an export or erase found, table by table; `residual` names rows that still mention the teacher."""

    user_id: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    residual: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items() if rows}

    def as_json(self) -> dict[str, Any]:
        """The export document: everything stored about one teacher."""
        return {"user_id": self.user_id, "exported_at": utcnow().isoformat(), "counts": self.counts,
                "tables": {name: rows for name, rows in self.rows.items() if rows}}


class PrivacyStore:
    """Export, erase, purge and the audit log over one state database."""

    def __init__(self, db: StateDB, retention: RetentionSettings | None = None) -> None:
        self.db = db
        self.retention = retention or RetentionSettings()

    # -- the tables as they are -----------------------------------------------------------------

    def tables(self) -> dict[str, Table]:
        """Every table in the database (reflected, so tables other modules add are included)."""
        meta = MetaData()
        meta.reflect(self.db.engine)
        return {name: table for name, table in meta.tables.items() if name not in NOT_PERSONAL}

    # -- one teacher -----------------------------------------------------------------------------

    def _select(self, user_id: str) -> tuple[dict[str, Table], dict[str, list[dict[str, Any]]]]:
        """The subject's rows per table: by user id, by their turns and escalations, by the id as a JSON value."""
        tables = self.tables()
        quoted = json.dumps(user_id)
        found: dict[str, list[dict[str, Any]]] = {}
        with self.db.engine.connect() as conn:
            def rows(name: str, *where: Any) -> list[dict[str, Any]]:
                if name not in tables or not where:
                    return []
                return [dict(r._mapping) for r in conn.execute(select(tables[name]).where(or_(*where)))]

            def scan(name: str, column: str) -> list[dict[str, Any]]:
                # JSON columns: the id as a whole JSON string value (not a substring of someone's text).
                if name not in tables:
                    return []
                return [dict(r._mapping) for r in conn.execute(select(tables[name]))
                        if quoted in _json_value(r._mapping[column])]

            turns = tables.get("turns")
            found["turns"] = rows("turns", turns.c.user_id == user_id) if turns is not None else []
            turn_ids = [r["id"] for r in found["turns"]]
            esc = tables.get("escalations")
            found["escalations"] = rows("escalations", esc.c.user_id == user_id) if esc is not None else []
            esc_ids = [r["id"] for r in found["escalations"]]
            keys = sorted({r["memory_key"] for r in found["turns"] + found["escalations"]})
            if "feedback" in tables:
                fb = tables["feedback"]
                found["feedback"] = rows("feedback", fb.c.user_id == user_id, fb.c.turn_id.in_(turn_ids))
            if "teams_reply_cards" in tables:
                found["teams_reply_cards"] = rows("teams_reply_cards",
                                                  tables["teams_reply_cards"].c.turn_id.in_(turn_ids))
            if "llm_usage" in tables and keys:
                found["llm_usage"] = rows("llm_usage", tables["llm_usage"].c.memory_key.in_(keys))
            if "outbox" in tables:
                ids = {r["id"] for r in rows("outbox", tables["outbox"].c.escalation_id.in_(esc_ids))}
                ids |= {r["id"] for r in scan("outbox", "payload")}
                found["outbox"] = rows("outbox", tables["outbox"].c.id.in_(sorted(ids))) if ids else []
            if "inbound_events" in tables:
                found["inbound_events"] = scan("inbound_events", "payload")
                if "processed_events" in tables:  # the same event's dedupe key
                    found["processed_events"] = rows("processed_events", tables["processed_events"].c.key.in_(
                        [r["key"] for r in found["inbound_events"]]))
            if "teams_conversation_refs" in tables:
                refs = tables["teams_conversation_refs"]
                by_key = rows("teams_conversation_refs", refs.c.key.endswith(f":{user_id}"))
                seen = {r["key"] for r in by_key}
                found["teams_conversation_refs"] = by_key + [r for r in scan("teams_conversation_refs", "reference")
                                                             if r["key"] not in seen]
            # Any other table with a user_id column (added by a later module) is covered too.
            for name, table in tables.items():
                if name not in found and "user_id" in table.c:
                    found[name] = rows(name, table.c.user_id == user_id)
        return tables, found

    def export(self, user_id: str, *, actor: str = "") -> SubjectReport:
        """Everything stored about one teacher; the export is written to the audit log (counts only)."""
        _check_id(user_id)
        _, found = self._select(user_id)
        report = SubjectReport(user_id, {name: [_row_dict(r) for r in rows] for name, rows in found.items()})
        self.audit(AuditAction.EXPORT, subject=subject_digest(user_id), actor=actor, counts=report.counts)
        return report

    def erase(self, user_id: str, *, actor: str = "") -> SubjectReport:
        """Delete one teacher's rows from every table; counts go to the audit log, and what still mentions them."""
        _check_id(user_id)
        tables, found = self._select(user_id)
        texts = [r["text"] for r in found.get("turns", []) if r.get("text")]
        with self.db.session() as s:
            for name, rows in found.items():
                if not rows:
                    continue
                table = tables[name]
                pk = list(table.primary_key.columns)
                if len(pk) == 1:
                    ids = [r[pk[0].name] for r in rows]
                    for start in range(0, len(ids), 500):
                        s.execute(delete(table).where(pk[0].in_(ids[start:start + 500])))
                else:  # no single primary key: match every column
                    for r in rows:
                        s.execute(delete(table).where(*(table.c[k] == v for k, v in r.items())))
            esc = tables.get("escalations")
            if esc is not None:
                # As staff they may have claimed or resolved someone else's handoff: keep the fact, not the id.
                for col, name_col in (("claimed_by", "claimed_by_name"), ("resolved_by", "resolved_by_name")):
                    if col in esc.c:
                        values = {col: "erased"} | ({name_col: None} if name_col in esc.c else {})
                        s.execute(update(esc).where(esc.c[col].endswith(f":{user_id}")).values(**values))
        report = SubjectReport(user_id, {name: [_row_dict(r) for r in rows] for name, rows in found.items()})
        report.residual = self.mentions(user_id, texts)
        counts: dict[str, Any] = dict(report.counts)
        if report.residual:
            counts["residual"] = report.residual
            log.warning("erase: rows in %s still mention the erased teacher", ", ".join(report.residual))
        self.audit(AuditAction.ERASE, subject=subject_digest(user_id), actor=actor, counts=counts)
        return report

    def mentions(self, user_id: str, texts: Iterable[str] = ()) -> dict[str, int]:
        """Rows per table whose values still contain the teacher's id (as a JSON value or column) or texts."""
        needles = [json.dumps(user_id), *[t for t in texts if len(t) >= 12]]
        out: dict[str, int] = {}
        with self.db.engine.connect() as conn:
            for name, table in self.tables().items():
                n = 0
                for r in conn.execute(select(table)):
                    values = list(r._mapping.values())
                    blob = _json_value(values)
                    if any(v == user_id for v in values) or any(needle in blob for needle in needles):
                        n += 1
                if n:
                    out[name] = n
        return out

    # -- retention -------------------------------------------------------------------------------

    def purge(self, *, now: datetime | None = None, actor: str = "retention") -> dict[str, int]:
        """Remove what is past its retention period, kind by kind; returns rows removed (or emptied) per kind."""
        now = now or utcnow()
        r = self.retention
        tables = self.tables()
        counts: dict[str, int] = {}

        def cutoff(days: int) -> datetime | None:
            return now - timedelta(days=days) if days > 0 else None

        with self.db.session() as s:
            def gone(name: str, *where: Any) -> int:
                if name not in tables:
                    return 0
                return rows_changed(s.execute(delete(tables[name]).where(*where)))

            if (c := cutoff(r.turns_days)) is not None and "turns" in tables:
                turns = tables["turns"]
                old = select(turns.c.id).where(turns.c.created_at < c)
                if "teams_reply_cards" in tables:
                    counts["teams_reply_cards"] = gone("teams_reply_cards",
                                                       tables["teams_reply_cards"].c.turn_id.in_(old))
                counts["turns"] = gone("turns", turns.c.created_at < c)
                # A check-in holds the teacher's plan in their words: it goes with the conversation.
                if "checkins" in tables:
                    counts["checkins"] = gone("checkins", tables["checkins"].c.updated_at < c)
                if "llm_usage" in tables:
                    counts["llm_usage"] = gone("llm_usage", tables["llm_usage"].c.created_at < c)
            if (c := cutoff(r.feedback_days)) is not None and "feedback" in tables:
                counts["feedback"] = gone("feedback", tables["feedback"].c.created_at < c)
            if (c := cutoff(r.inbound_days)) is not None:
                if "inbound_events" in tables:
                    counts["inbound_events"] = gone("inbound_events", tables["inbound_events"].c.created_at < c)
                if "processed_events" in tables:
                    counts["processed_events"] = gone("processed_events", tables["processed_events"].c.created_at < c)
            if (c := cutoff(r.resolved_escalations_days)) is not None and "escalations" in tables:
                esc = tables["escalations"]
                resolved = [row.id for row in s.execute(select(esc.c.id).where(
                    esc.c.status == EscalationStatus.RESOLVED, func.coalesce(esc.c.resolved_at, esc.c.updated_at) < c))]
                if resolved and "outbox" in tables:
                    counts["outbox_rows"] = gone("outbox", tables["outbox"].c.escalation_id.in_(resolved))
                counts["escalations"] = gone("escalations", esc.c.id.in_(resolved)) if resolved else 0
            if (c := cutoff(r.outbox_days)) is not None and "outbox" in tables:
                box = tables["outbox"]
                # The body goes; the row stays, so the delivery record (and its idempotency key) is kept.
                ids = [row.id for row in s.execute(select(box.c.id, box.c.payload).where(
                    box.c.status == "delivered", box.c.delivered_at < c)) if row.payload]
                if ids:
                    s.execute(update(box).where(box.c.id.in_(ids)).values(payload={}))
                counts["outbox_bodies"] = len(ids)
        counts = {k: v for k, v in counts.items() if v}
        self.audit(AuditAction.PURGE, actor=actor, counts=counts, at=now)
        if counts:
            log.info("retention purge removed %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        return counts

    def last_purge(self) -> datetime | None:
        with self.db.session() as s:
            return aware(s.scalar(select(func.max(PrivacyAuditRow.created_at)).where(
                PrivacyAuditRow.action == AuditAction.PURGE.value)))

    def purge_if_due(self, *, now: datetime | None = None) -> dict[str, int] | None:
        """Purge when the last purge (by any process sharing the database) is a day old or more."""
        now = now or utcnow()
        last = self.last_purge()
        if last is not None and now - last < PURGE_EVERY:
            return None
        return self.purge(now=now)

    # -- the audit log ---------------------------------------------------------------------------

    def audit(self, action: AuditAction, *, subject: str = "", actor: str = "", counts: dict[str, Any] | None = None,
              at: datetime | None = None) -> None:
        with self.db.session() as s:
            s.add(PrivacyAuditRow(action=action.value, subject=subject, actor=actor[:200], counts=counts or {},
                                  created_at=at or utcnow()))

    def audit_log(self, limit: int = 100) -> list[PrivacyAuditRow]:
        with self.db.session() as s:
            return list(s.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.id.desc()).limit(limit)).all())


def _check_id(user_id: str) -> None:
    if not user_id or not user_id.strip():
        raise ValueError("a user id is required (the teacher's Slack member id, Teams id, or console name)")


class RetentionWorker:
    """Applies retention once a day in a daemon thread of a running bot (whichever replica is first)."""

    def __init__(self, store: PrivacyStore, *, check_seconds: float = 3600.0) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="coach-retention", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.purge_if_due()
            except Exception:  # the database may be down for a moment; try again at the next check
                log.exception("retention purge failed; trying again later")
            self._stop.wait(self.check_seconds)
