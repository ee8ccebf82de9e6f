"""Idempotency-Key: the first response to a keyed request is stored in the transaction that
created what it describes, so a repeat (a client retrying after a timeout) gets it back and
creates nothing. The unique (company, key) row also makes two concurrent twins take turns.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import IdempotencyKey

MAX_KEY_LENGTH = 255
Answer = tuple[int, dict]  # (HTTP status, JSON body)


def request_hash(body: object) -> str:
    """The same JSON, whatever its key order or spacing, hashes the same."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _sha256(canonical)


def run_once(session: Session, company_id: str, key: str | None, body_hash: str,
             now: datetime, work: Callable[[Session], Answer]) -> tuple[Answer, bool]:
    """Run `work` in `session`'s transaction and commit it, or replay the answer stored for `key`.

    The transaction may have begun already (the API checks the key in it). Returns the answer
    and whether it is a replay. An error raised by `work` rolls everything back, the key
    included: only success is remembered, so a corrected retry can succeed.
    """
    if key is not None:
        check_key(key)
    try:
        record = None
        if key is not None:
            record = IdempotencyKey(company_id=company_id, key_hash=_sha256(key),
                                    request_hash=body_hash, status_code=0, response_body={},
                                    created_at=now)
            session.add(record)
            session.flush()  # claims the key; a concurrent twin waits here, then sees it taken
        status, body = work(session)
        if record is not None:
            record.status_code, record.response_body = status, body
        session.commit()
        return (status, body), False
    except IntegrityError:
        session.rollback()
        stored = _stored(session, company_id, key) if key is not None else None
        if stored is None:  # the conflict was something else than our key
            raise
    except BaseException:
        session.rollback()
        raise
    if stored.request_hash != body_hash:
        raise InvalidInput("this Idempotency-Key was already used with a different request body: "
                           "use a new key for a new request",
                           fields={"Idempotency-Key": "already used with another body"})
    return (stored.status_code, stored.response_body), True


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"the Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                           fields={"Idempotency-Key": "1 to 255 printable characters"})


def _stored(session: Session, company_id: str, key: str) -> IdempotencyKey | None:
    return session.scalars(select(IdempotencyKey).where(
        IdempotencyKey.company_id == company_id,
        IdempotencyKey.key_hash == _sha256(key))).first()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
