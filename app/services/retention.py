"""Retention: delete the history older than a window, a few thousand rows per transaction so
a claim never waits behind one huge DELETE. Posts are never deleted, nor the last attempt of
a post (its outcome is what `queue retry` and the dashboard explain a post with)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput
from app.models import IdempotencyKey, Job, OAuthState, PublishAttempt, WebhookDelivery, WorkerRun
from app.queue.tx import in_transaction
from app.statuses import DeliveryStatus, JobStatus

PRUNE_BATCH = 2000  # rows per DELETE transaction: short enough that claims never queue behind it
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """'90d', '12h', '30m', '45s' -> a positive timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhms])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"--older-than must be a positive duration such as 90d, 12h or 30m, "
                           f"got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class PruneReport:
    """Rows deleted (or, in a dry run, that would be) per table, and the transactions used."""
    cutoff: datetime
    dry_run: bool
    publish_attempts: int = 0
    worker_runs: int = 0
    idempotency_keys: int = 0
    jobs: int = 0
    webhook_deliveries: int = 0  # delivered or given up; pending and retrying ones stay
    oauth_states: int = 0        # connect flows that expired before the cutoff
    batches: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def _old_attempts(cutoff: datetime):
    """Finished attempts before the cutoff that a later attempt of the same post follows."""
    a, later = PublishAttempt.__table__.alias("a"), PublishAttempt.__table__.alias("later")
    followed = exists().where(later.c.post_schedule_id == a.c.post_schedule_id, later.c.id > a.c.id)
    return a, (a.c.started_at < cutoff, a.c.finished_at < cutoff, a.c.outcome.is_not(None), followed)


def _targets(cutoff: datetime) -> dict[str, tuple[Table, tuple]]:
    """Per report field: the table (or alias) to read and what makes one of its rows old."""
    runs, keys, jobs = WorkerRun.__table__, IdempotencyKey.__table__, Job.__table__
    sent, states = WebhookDelivery.__table__, OAuthState.__table__
    return {
        "publish_attempts": _old_attempts(cutoff),
        # A run lasts a minute at most: one started before the window is finished or dead.
        "worker_runs": (runs, (runs.c.started_at < cutoff,)),
        "idempotency_keys": (keys, (keys.c.created_at < cutoff,)),
        "jobs": (jobs, (jobs.c.status.in_((JobStatus.DONE, JobStatus.FAILED)), jobs.c.updated_at < cutoff)),
        "webhook_deliveries": (sent, (sent.c.status.in_((DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)),
                                      sent.c.created_at < cutoff)),
        "oauth_states": (states, (states.c.expires_at < cutoff,)),
    }


def prune(sessions: sessionmaker[Session], now: datetime, older_than: timedelta,
          dry_run: bool = False, batch: int = PRUNE_BATCH) -> PruneReport:
    """Delete (or with `dry_run` only count) what is older than `now - older_than`."""
    report = PruneReport(cutoff=now - older_than, dry_run=dry_run)
    for name, (table, old) in _targets(report.cutoff).items():
        if dry_run:
            with sessions() as session:
                setattr(report, name, session.scalar(select(func.count()).select_from(table)
                                                     .where(*old)))
            continue
        deleted, report_batches = _delete_in_batches(sessions, table, old, batch)
        setattr(report, name, deleted)
        report.batches += report_batches
    return report


def _delete_in_batches(sessions: sessionmaker[Session], table: Table, old: tuple,
                       batch: int) -> tuple[int, int]:
    """Read up to `batch` old ids, delete them by primary key, commit; again until none is left.
    Deleting by id (not by the condition) keeps each transaction's locks to those rows."""
    base = getattr(table, "original", table)  # MySQL cannot DELETE from a table it reads by alias
    key = base.primary_key.columns.keys()[0]  # id; oauth_states' state_hash

    def one_batch(conn) -> int:
        ids = list(conn.scalars(select(table.c[key]).where(*old).order_by(table.c[key]).limit(batch)))
        if ids:
            conn.execute(delete(base).where(base.c[key].in_(ids)))
        return len(ids)

    deleted = batches = 0
    while True:
        count = in_transaction(sessions, one_batch)
        if count == 0:
            return deleted, batches
        deleted, batches = deleted + count, batches + 1
        if count < batch:
            return deleted, batches
