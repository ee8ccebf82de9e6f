"""Re-sealing every stored secret under SCHEDULER_SECRET_KEY (`scheduler secret-key rotate`).

Batches of rows by primary key, one transaction each, so an interrupted rotation keeps what it
did and the next run carries on: a value the current key already opens is skipped. Each write
is conditional on the value read, so a token replaced meanwhile (a reconnect) is never undone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from sqlalchemy import Column, Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.errors import ConfigError
from app.models import OAuthApp, SocialAccount, Webhook

# Every sealed column kept for long: (table, column). (A connect flow's sealed PKCE verifier
# lives 10 minutes; the old key that sealed it stays listed through a rotation anyway.)
SEALED = ((SocialAccount.__table__, "access_token_encrypted"),
          (SocialAccount.__table__, "refresh_token_encrypted"),
          (OAuthApp.__table__, "client_secret_encrypted"),
          (Webhook.__table__, "secret_encrypted"))


@dataclass
class RotationReport:
    resealed: int = 0        # opened with an old key, sealed again with the current one
    already_current: int = 0
    unreadable: list[str] = field(default_factory=list)  # "table.column id" no key opens

    def as_dict(self) -> dict:
        return asdict(self)


def sealed_columns() -> list[tuple[Table, Column]]:
    return [(table, table.c[name]) for table, name in SEALED if name in table.c]


def rotate(sessions: sessionmaker[Session], batch: int = 500,
           after_batch: Callable[[RotationReport], None] | None = None,
           keys: crypto.KeyRing | None = None) -> RotationReport:
    """Re-seal every stored secret not yet under the current key; counts what it did.
    `after_batch` is called after each committed batch (progress; tests interrupt there)."""
    keys = keys or crypto.KeyRing.from_env()  # a malformed key stops it here, naming the setting
    report = RotationReport()
    for table, column in sealed_columns():
        last = None
        while True:
            query = select(table.c.id, column).where(column.is_not(None)).order_by(table.c.id)
            with sessions.begin() as session:
                rows = session.execute((query if last is None else query.where(
                    table.c.id > last)).limit(batch)).all()
                for row_id, sealed in rows:
                    _reseal(session, table, column, row_id, sealed, report, keys)
            if not rows:
                break
            last = rows[-1][0]
            if after_batch is not None:
                after_batch(report)
    return report


def _reseal(session: Session, table: Table, column: Column, row_id, sealed: str,
            report: RotationReport, keys: crypto.KeyRing) -> None:
    if crypto.is_current(sealed, keys):
        report.already_current += 1
        return
    try:
        fresh = crypto.reseal(sealed, keys=keys)
    except ConfigError:
        report.unreadable.append(f"{table.name}.{column.name} {row_id}")
        return
    session.execute(update(table).where(table.c.id == row_id, column == sealed)
                    .values({column.name: fresh}))
    report.resealed += 1
