"""Companies, their API keys and their social accounts."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.db import rowcount
from app.errors import Conflict, InvalidInput, NotFound
from app.models import ApiKey, Client, Company, SocialAccount
from app.oauth.schedule import schedule_refresh
from app.services.limits import LIMITS
from app.statuses import AccountStatus
from app.timeutil import zone

KEY_PREFIX = "sk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_company(sessions: sessionmaker[Session], name: str, now: datetime,
                   timezone: str = "UTC") -> tuple[Company, str]:
    """A company and its first API key; the key is returned once and only its hash is kept."""
    if not name.strip():
        raise InvalidInput("the company name must not be empty")
    zone(timezone)
    with sessions.begin() as session:
        company = Company(name=name.strip(), timezone=timezone, created_at=now)
        session.add(company)
        session.flush()
        key = _add_key(session, company.id, now)
    return company, key


def create_api_key(sessions: sessionmaker[Session], company_id: str, now: datetime) -> tuple[ApiKey, str]:
    with sessions.begin() as session:
        _company(session, company_id)
        key = _add_key(session, company_id, now)
        record = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).one()
    return record, key


def _add_key(session: Session, company_id: str, now: datetime) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    session.add(ApiKey(company_id=company_id, prefix=key[:len(KEY_PREFIX) + 6],
                       key_hash=hash_key(key), created_at=now))
    return key


def list_api_keys(sessions: sessionmaker[Session], company_id: str) -> list[ApiKey]:
    with sessions() as session:
        _company(session, company_id)
        return list(session.scalars(select(ApiKey).where(ApiKey.company_id == company_id)
                                    .order_by(ApiKey.created_at)))


def revoke_api_key(sessions: sessionmaker[Session], key_id: str, now: datetime) -> ApiKey:
    with sessions.begin() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"no API key with id {key_id}")
        if key.revoked_at is None:
            key.revoked_at = now
    return key


def add_account(sessions: sessionmaker[Session], company_id: str, platform: str, external_id: str,
                access_token: str, now: datetime, display_name: str | None = None,
                client_id: str | None = None, token_expires_at: datetime | None = None,
                keys: crypto.KeyRing | None = None) -> SocialAccount:
    if platform not in LIMITS:
        names = ", ".join(LIMITS)
        raise InvalidInput(f"unknown platform {platform!r}: one of {names}",
                           fields={"platform": f"one of {names}"})
    empty = {name: "must not be empty" for name, value in
             (("externalId", external_id), ("accessToken", access_token)) if not value.strip()}
    if empty:
        raise InvalidInput("the external id and the access token must not be empty", fields=empty)
    with sessions.begin() as session:
        _company(session, company_id)
        if client_id is not None:
            client = session.get(Client, client_id)
            if client is None or client.company_id != company_id:
                raise NotFound(f"no client {client_id} in this company")
        account = SocialAccount(
            company_id=company_id, client_id=client_id, platform=platform,
            external_id=external_id.strip(), display_name=display_name,
            access_token_encrypted=crypto.seal(access_token, keys), token_expires_at=token_expires_at,
            status=AccountStatus.ACTIVE, created_at=now, updated_at=now)
        session.add(account)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"this company already has the {platform} account {external_id}") from None
        schedule_refresh(session, account, now)
    return account


def list_accounts(sessions: sessionmaker[Session], company_id: str) -> list[SocialAccount]:
    with sessions() as session:
        return list(session.scalars(select(SocialAccount)
                                    .where(SocialAccount.company_id == company_id)
                                    .order_by(SocialAccount.created_at, SocialAccount.id)))


def create_client(sessions: sessionmaker[Session], company_id: str, name: str,
                  now: datetime) -> Client:
    if not name.strip():
        raise InvalidInput("the client name must not be empty", fields={"name": "must not be empty"})
    with sessions.begin() as session:
        _company(session, company_id)
        client = Client(company_id=company_id, name=name.strip(), created_at=now)
        session.add(client)
    return client


def list_clients(sessions: sessionmaker[Session],
                 company_id: str) -> list[tuple[Client, list[SocialAccount]]]:
    """The company's clients, each with its social accounts."""
    with sessions() as session:
        clients = list(session.scalars(select(Client).where(Client.company_id == company_id)
                                       .order_by(Client.created_at, Client.id)))
        accounts = session.scalars(select(SocialAccount).where(
            SocialAccount.company_id == company_id, SocialAccount.client_id.is_not(None))
            .order_by(SocialAccount.created_at, SocialAccount.id))
        by_client: dict[str, list[SocialAccount]] = {c.id: [] for c in clients}
        for account in accounts:
            assert account.client_id is not None  # client_id IS NOT NULL above
            by_client[account.client_id].append(account)
    return [(c, by_client[c.id]) for c in clients]


def company_for_key(sessions: sessionmaker[Session], key: str) -> str | None:
    """The company a live API key belongs to; None for an unknown or revoked key."""
    return company_for_key_hash(sessions, hash_key(key))


def company_for_key_hash(sessions: sessionmaker[Session], key_hash: str) -> str | None:
    """As company_for_key, from the key's hash (what a dashboard session keeps)."""
    with sessions() as session:
        return key_company(session, key_hash)


def key_company(session: Session, key_hash: str) -> str | None:
    """As company_for_key_hash, inside the caller's transaction (the API checks the key in the
    transaction that then creates the posts: one connection a request)."""
    keys = ApiKey.__table__.c  # every API request asks this: Core, past the ORM's machinery
    return session.connection().execute(select(keys.company_id).where(
        keys.key_hash == key_hash, keys.revoked_at.is_(None))).scalar()


def get_company(sessions: sessionmaker[Session], company_id: str) -> Company:
    with sessions() as session:
        return _company(session, company_id)


def list_companies(sessions: sessionmaker[Session]) -> list[Company]:
    """Every company, oldest first (the operator's view: the API only ever sees its own)."""
    with sessions() as session:
        return list(session.scalars(select(Company).order_by(Company.created_at, Company.id)))


def mark_needs_reconnect(sessions: sessionmaker[Session], account_id: str, now: datetime,
                         reason: str | None = None) -> None:
    """The platform refused the account's token: the account needs reconnecting, and its pending
    posts wait for that (status `waiting`)."""
    with sessions.begin() as session:
        needs_reconnect(session, account_id, now, reason)


def needs_reconnect(session: Session, account_id: str, now: datetime,
                    reason: str | None = None) -> None:
    """mark_needs_reconnect inside the caller's transaction (a refresh holding the row)."""
    from worker.queue import hold_account_posts

    from app.services.webhooks import account_event

    changed = rowcount(session.execute(update(SocialAccount).where(
        SocialAccount.id == account_id, SocialAccount.status != AccountStatus.NEEDS_RECONNECT)
        .values(status=AccountStatus.NEEDS_RECONNECT, status_reason=reason, updated_at=now)))
    account = session.get(SocialAccount, account_id, populate_existing=True)
    if account is not None:
        hold_account_posts(session, account_id, now, waiting_reason(account))
        if changed:  # the transition, once: not every thread that saw the refusal
            account_event(session, "account.needs_reconnect", account_id, now)


class _Named(Protocol):
    """What waiting_reason reads: a SocialAccount, or the worker's plain row of one."""
    @property
    def platform(self) -> str: ...
    @property
    def external_id(self) -> str: ...
    @property
    def display_name(self) -> str | None: ...


def waiting_reason(account: _Named) -> str:
    return (f"waiting: the {account.platform} account {account.display_name or account.external_id} "
            "must be reconnected (a new access token) before this post can be published")


def reconnect_account(sessions: sessionmaker[Session], company_id: str, account_id: str,
                      access_token: str, now: datetime,
                      token_expires_at: datetime | None = None,
                      keys: crypto.KeyRing | None = None) -> tuple[SocialAccount, int]:
    """A new token for the account, which is active again; the posts that were waiting for it
    are pending again, each due at its own time. Returns the account and how many were released."""
    if not access_token.strip():
        raise InvalidInput("the access token must not be empty",
                           fields={"accessToken": "must not be empty"})
    with sessions.begin() as session:
        account = session.get(SocialAccount, account_id, with_for_update=True)
        if account is None or account.company_id != company_id:
            raise NotFound(f"no social account {account_id} in this company")
        released = renew(session, account, now, access_token, token_expires_at, keys=keys)
    return account, released


def renew(session: Session, account: SocialAccount, now: datetime, access_token: str,
          expires_at: datetime | None, refresh_token: str | None = None,
          refresh_expires_at: datetime | None = None, keys: crypto.KeyRing | None = None) -> int:
    """New tokens for an account the caller holds (FOR UPDATE), inside its transaction: active
    again, its waiting posts pending, its next refresh (or expiry warning) queued. A refresh
    token is replaced only by a new one: None keeps the stored one. Returns the posts released."""
    from worker.queue import release_account_posts

    account.access_token_encrypted = crypto.seal(access_token, keys)
    account.token_expires_at = expires_at
    if refresh_token is not None:
        account.refresh_token_encrypted = crypto.seal(refresh_token, keys)
        account.refresh_expires_at = refresh_expires_at
    account.status = AccountStatus.ACTIVE
    account.status_reason = None
    account.expiring_notified_at = None
    account.updated_at = now
    session.flush()
    schedule_refresh(session, account, now)
    return release_account_posts(session, account.id, now)


def _company(session: Session, company_id: str) -> Company:
    company = session.get(Company, company_id)
    if company is None:
        raise NotFound(f"no company with id {company_id}")
    return company
