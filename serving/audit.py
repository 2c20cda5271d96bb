"""The audit log: who changed what, when, with hashes of before and after (append-only).

``audit_log(entry_id, at, user, action, object, before_hash, after_hash, detail)`` lives in
the serving database (its own migration stream, ``audit``). An entry is written in the
same transaction as the change it records when the change is in the serving database
(campaign states and approvals, operator voids); a change elsewhere (a segment file's
sharing, a favourite in the warehouse, a forced sync) records its entry right after the
change succeeded. Triggers refuse UPDATE and DELETE.

Hashes are the first 16 hex digits of the SHA-256 of the object's state as canonical JSON
(``None`` when there was no state before, or is none after).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kequn.errors import Location, ValidationError
from kequn.migrations import Migration, apply_migrations
from serving.db import ServingDB, utcnow

STREAM = "audit"

_SQLITE = (
    "CREATE TABLE audit_log (entry_id INTEGER PRIMARY KEY AUTOINCREMENT, at TIMESTAMP NOT NULL, "
    "user_name VARCHAR(200) NOT NULL, action VARCHAR(64) NOT NULL, object VARCHAR(400) NOT NULL, "
    "before_hash VARCHAR(16), after_hash VARCHAR(16), detail TEXT NOT NULL)",
    "CREATE INDEX audit_log_object ON audit_log (object, entry_id)",
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)
_POSTGRESQL = (
    "CREATE TABLE audit_log (entry_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "at TIMESTAMP NOT NULL, user_name VARCHAR(200) NOT NULL, action VARCHAR(64) NOT NULL, "
    "object VARCHAR(400) NOT NULL, before_hash VARCHAR(16), after_hash VARCHAR(16), "
    "detail TEXT NOT NULL)",
    "CREATE INDEX audit_log_object ON audit_log (object, entry_id)",
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
)

AUDIT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "append-only audit log", {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}),
)


def migrate(db: ServingDB) -> list[int]:
    """Bring the ``audit`` stream up to date on ``db``; the versions applied now."""
    return apply_migrations(db, STREAM, AUDIT_MIGRATIONS)


def state_hash(state: Any) -> str | None:
    """A short stable hash of ``state`` (canonical JSON), None for no state.

    >>> state_hash({"b": 1, "a": "x"}) == state_hash({"a": "x", "b": 1})
    True
    >>> state_hash(None) is None
    True
    """
    if state is None:
        return None
    text = json.dumps(state, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def require_user(user: str | None) -> str:
    """The acting user, or a ValidationError saying how to give one."""
    if not user or not user.strip():
        raise ValidationError("this command changes state and needs to know who you are",
                              Location(), hint="give --as USER or set KEQUN_USER")
    return user.strip()


@dataclass(frozen=True)
class Entry:
    """One audit log entry."""

    entry_id: int
    at: datetime
    user: str
    action: str
    object: str
    before_hash: str | None
    after_hash: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "at": self.at.isoformat(), "user": self.user,
                "action": self.action, "object": self.object, "before_hash": self.before_hash,
                "after_hash": self.after_hash, "detail": self.detail}


def record(db: ServingDB, user: str, action: str, obj: str, *, before: Any = None,
           after: Any = None, detail: str = "", at: datetime | None = None) -> None:
    """Append one entry (inside the caller's transaction, if one is open)."""
    db.execute(
        "INSERT INTO audit_log (at, user_name, action, object, before_hash, after_hash, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at or utcnow(), require_user(user), action, obj, state_hash(before), state_hash(after),
         detail),
    )


def entries(db: ServingDB, *, obj: str | None = None, user: str | None = None,
            action: str | None = None, limit: int = 100) -> list[Entry]:
    """The latest ``limit`` entries (optionally of one object, user or action), oldest first."""
    where, params = [], []
    for column, value in (("object", obj), ("user_name", user), ("action", action)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.fetchall(
        "SELECT entry_id, at, user_name, action, object, before_hash, after_hash, detail "
        f"FROM audit_log{clause} ORDER BY entry_id DESC LIMIT ?", (*params, int(limit)))
    return [Entry(int(r[0]), r[1] if isinstance(r[1], datetime) else datetime.fromisoformat(
        str(r[1])), *r[2:]) for r in reversed(rows)]
