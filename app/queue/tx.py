"""One short queue transaction, run again on a deadlock or a lock-wait timeout."""
from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import engine_of
from app.errors import SchedulerError

T = TypeVar("T")
LOCK_CONFLICTS = (1205, 1213)  # lock wait timeout, deadlock: the transaction can simply run again
# PostgreSQL's SQLSTATEs for the same: deadlock, serialization failure, lock not available
PG_LOCK_CONFLICTS = ("40P01", "40001", "55P03")
TX_RETRIES = 5


class LockConflict(SchedulerError):
    """A queue transaction kept hitting deadlocks or lock waits; the run stops cleanly."""


def in_transaction(sessions: sessionmaker[Session], work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; run it again on a deadlock or lock-wait timeout."""
    engine = engine_of(sessions)  # the queue's statements are Core: a Connection, not a Session
    for attempt in range(TX_RETRIES + 1):
        try:
            with engine.begin() as connection:
                return work(connection)
        except OperationalError as exc:
            if not _is_lock_conflict(exc):
                raise
            if attempt == TX_RETRIES:
                raise LockConflict(f"gave up after {TX_RETRIES + 1} lock conflicts: "
                                   f"{str(exc.orig).splitlines()[0]}") from exc
            time.sleep(min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _is_lock_conflict(exc: OperationalError) -> bool:
    args = getattr(exc.orig, "args", ())
    if args and args[0] in LOCK_CONFLICTS:
        return True
    if getattr(exc.orig, "sqlstate", None) in PG_LOCK_CONFLICTS:
        return True
    return "database is locked" in str(exc.orig)  # SQLite, after its busy timeout
