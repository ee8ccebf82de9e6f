"""The fenced SKIP LOCKED discipline, written once for any table that has the queue's lock
columns (id, status, run_at, locked_at, worker_id, lock_token, attempts, updated_at) and an
index on (status, run_at, id): the due read, the claim, the stale read, the fenced release.

Callers run these inside their own transaction (app.queue.tx.in_transaction) and add what is
particular to their table (post_schedule's attempt rows, a job's payload).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, Table, select, update
from sqlalchemy.engine import Connection

from app.statuses import EDITABLE, JobStatus, QueueStatus

# Both tables name their claim states alike: claimable, and held under a lock_token.
PENDING, PROCESSING = QueueStatus.PENDING, QueueStatus.PROCESSING
assert (PENDING, PROCESSING) == (JobStatus.PENDING, JobStatus.PROCESSING)
CLAIMABLE = EDITABLE  # a release to these clears the owner; a finished row keeps it


@dataclass(frozen=True)
class LockedTable:
    table: Table

    @property
    def c(self):
        return self.table.c

    def due(self, now: datetime, batch: int, columns) -> Select:
        """The claim's locking read, in the order of the (status, run_at, id) index so no sort
        is needed; it reads what the claim returns, so no second read is needed either."""
        c = self.c
        return (select(*columns).where(c.status == PENDING, c.run_at <= now)
                .order_by(c.run_at, c.id).limit(batch).with_for_update(skip_locked=True))

    def claim(self, conn: Connection, now: datetime, batch: int, worker_id: str, token: str,
              columns) -> Sequence[Row]:
        """Lock up to `batch` due rows others do not hold and mark them ours under `token`,
        counting the attempt now (a crash after this point still spends it). The rows read
        are returned as they were before the claim."""
        rows = conn.execute(self.due(now, batch, columns)).all()
        if rows:
            c = self.c
            conn.execute(update(self.table).where(c.id.in_([r.id for r in rows])).values(
                status=PROCESSING, locked_at=now, worker_id=worker_id, lock_token=token,
                attempts=c.attempts + 1, updated_at=now))
        return rows

    def stale(self, conn: Connection, cutoff: datetime, limit: int, columns) -> Sequence[Row]:
        """Rows held past the lock timeout, locked as they are read (SKIP LOCKED), so
        overlapping recoveries take disjoint rows and none writes on what it did not hold."""
        c = self.c
        return conn.execute(select(*columns).where(c.status == PROCESSING, c.locked_at < cutoff)
                            .order_by(c.id).limit(limit).with_for_update(skip_locked=True)).all()

    def release(self, conn: Connection, row_id: int, token: str, now: datetime, **values) -> bool:
        """The fenced write: it matches only while the row is still ours under this claim."""
        values["locked_at"] = None
        if values["status"] in CLAIMABLE:
            values.update(worker_id=None, lock_token=None)
        c = self.c
        result = conn.execute(update(self.table).where(
            c.id == row_id, c.lock_token == token, c.status == PROCESSING).values(
            updated_at=now, **values))
        return result.rowcount == 1
