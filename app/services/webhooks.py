"""Webhooks: a company's endpoints, the events raised where posts and accounts change state
(inside the transaction that records the change, so a crash loses no event), and the policy of
their delivery (signature, retry times). The sending itself is worker/webhooks.py's job.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from datetime import datetime, timedelta
from typing import Callable, Iterable
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.errors import InvalidInput, NotFound
from app.models import PostDetail, SocialAccount, Webhook, WebhookDelivery, new_uuid
from app.queue.jobs import insert_jobs
from app.statuses import DeliveryStatus

POST_EVENTS = ("post.published", "post.failed", "post.missed")
ACCOUNT_EVENTS = ("account.needs_reconnect", "account.token_expiring")
EVENTS = POST_EVENTS + ACCOUNT_EVENTS
DELIVERY_KIND = "deliver_webhook"
RETRY_FOR = timedelta(hours=24)      # a delivery is tried again for this long, then failed
FIRST_RETRY = timedelta(minutes=1)   # doubling after each failure ...
LONGEST_WAIT = timedelta(hours=4)    # ... up to this between two attempts
MAX_ATTEMPTS = 40                    # a backstop only: RETRY_FOR ends a delivery first (~14)
SIGNATURE_HEADER = "X-Scheduler-Signature"
Resolver = Callable[[str], list[str]]


# -- endpoints --------------------------------------------------------------------------------

def create_webhook(sessions: sessionmaker[Session], company_id: str, url: str, events: list[str],
                   now: datetime, allow_private: bool = False,
                   resolve: Resolver | None = None,
                   keys: crypto.KeyRing | None = None) -> tuple[Webhook, str]:
    """A webhook and its signing secret, returned once (only its sealed form is kept)."""
    why = refused_url(url, allow_private, resolve)
    if why:
        raise InvalidInput(f"webhook url refused: {why}", {"url": why})
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        why = f"events must be a non-empty list of {', '.join(EVENTS)}"
        raise InvalidInput(why, {"events": why})
    secret = "whsec_" + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        hook = Webhook(company_id=company_id, url=url, events=list(dict.fromkeys(events)),
                       secret_encrypted=crypto.seal(secret, keys), created_at=now)
        session.add(hook)
    return hook, secret


def list_webhooks(sessions: sessionmaker[Session], company_id: str) -> list[Webhook]:
    with sessions() as session:
        return list(session.scalars(select(Webhook).where(
            Webhook.company_id == company_id, Webhook.disabled_at.is_(None))
            .order_by(Webhook.created_at, Webhook.id)))


def delete_webhook(sessions: sessionmaker[Session], company_id: str, webhook_id: str,
                   now: datetime) -> Webhook:
    """No more events for it; deliveries already queued stop at their next attempt."""
    with sessions.begin() as session:
        hook = _webhook(session, company_id, webhook_id)
        hook.disabled_at = now
    return hook


def list_deliveries(sessions: sessionmaker[Session], company_id: str, webhook_id: str,
                    limit: int = 100) -> list[WebhookDelivery]:
    """The webhook's deliveries, newest first."""
    with sessions() as session:
        _webhook(session, company_id, webhook_id)
        return list(session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)))


def _webhook(session: Session, company_id: str, webhook_id: str) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.company_id != company_id or hook.disabled_at is not None:
        raise NotFound(f"no webhook with id {webhook_id}")  # another company's: the same answer
    return hook


# -- where a webhook may point ---------------------------------------------------------------

def refused_url(url: str, allow_private: bool, resolve: Resolver | None = None) -> str | None:
    """Why `url` may not receive webhooks, or None. Every address the host resolves to must be
    public (not private, loopback, link-local, metadata, ...) unless private ones are allowed:
    the addresses are checked, not the name, which anyone can point anywhere."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a bracketed host that is no IPv6 address
        return "it must be an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "it must not carry a user name or password"
    try:
        parts.port
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if allow_private:
        return None
    try:
        addresses = (resolve or _resolve)(parts.hostname)
    except OSError:
        return f"its host {parts.hostname} does not resolve"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_global or ip.is_multicast:
            return (f"{parts.hostname} resolves to {ip}, a private, loopback, link-local or "
                    "reserved address (SCHEDULER_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
    return None


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


# -- events, raised inside the transaction that records the change ---------------------------

def post_events(conn: Connection | Session, event: str, post_ids: Iterable[str],
                now: datetime) -> int:
    """Queue `event` for the posts (rows already written in this transaction) to each of their
    companies' webhooks that asked for it. One read when no webhook exists; returns how many."""
    post_ids = list(post_ids)
    if not post_ids:
        return 0
    p, a, w = PostDetail, SocialAccount, Webhook
    rows = conn.execute(
        select(p.id, p.company_id, p.social_account_id, p.platform_post_id, p.published_at,
               p.error_message, a.platform, w.id.label("webhook_id"), w.events)
        .join(a, a.id == p.social_account_id)
        .join(w, (w.company_id == p.company_id) & w.disabled_at.is_(None))
        .where(p.id.in_(post_ids))).all()
    out = []
    for r in rows:
        if event in (r.events or []):
            data = {"postId": r.id, "socialAccountId": r.social_account_id, "platform": r.platform}
            if event == "post.published":
                data.update(platformPostId=r.platform_post_id, publishedAt=_iso(r.published_at))
            else:
                data["error"] = r.error_message
            out.append((r.webhook_id, r.company_id, data))
    return _queue(conn, event, out, now)


def account_event(conn: Connection | Session, event: str, account_id: str, now: datetime) -> int:
    """Queue `event` about a social account to its company's webhooks that asked for it."""
    a, w = SocialAccount, Webhook
    rows = conn.execute(
        select(a.id, a.company_id, a.platform, a.external_id, a.display_name, a.token_expires_at,
               w.id.label("webhook_id"), w.events)
        .join(w, (w.company_id == a.company_id) & w.disabled_at.is_(None))
        .where(a.id == account_id)).all()
    out = [(r.webhook_id, r.company_id, {
        "socialAccountId": r.id, "platform": r.platform, "externalId": r.external_id,
        "displayName": r.display_name, "tokenExpiresAt": _iso(r.token_expires_at)})
        for r in rows if event in (r.events or [])]
    return _queue(conn, event, out, now)


def _queue(conn: Connection | Session, event: str, out: list[tuple[str, str, dict]],
           now: datetime) -> int:
    """One delivery row and one deliver_webhook job per (webhook, company, data): two multi-row
    INSERTs whatever their number (the delivery's id is made here, so no insert waits for one)."""
    if not out:
        return 0
    deliveries = [dict(id=new_uuid(), webhook_id=webhook_id, event=event, attempt=0,
                       status=DeliveryStatus.PENDING, created_at=now,
                       payload={"event": event, "occurredAt": _iso(now), "data": data})
                  for webhook_id, _, data in out]
    conn.execute(insert(WebhookDelivery), deliveries)
    insert_jobs(conn, DELIVERY_KIND, [({"delivery_id": d["id"]}, company_id)
                                      for d, (_, company_id, _) in zip(deliveries, out)],
                run_at=now, now=now, max_attempts=MAX_ATTEMPTS)
    return len(out)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


# -- delivery policy -------------------------------------------------------------------------

def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Scheduler-Signature value: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def next_attempt_at(first_at: datetime, attempt: int, now: datetime) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based), or None when that
    would be past RETRY_FOR after the event: 1 min, 2, 4, ... up to 4 h apart."""
    wait = min(FIRST_RETRY * 2 ** (attempt - 1), LONGEST_WAIT)
    when = now + wait
    return when if when <= first_at + RETRY_FOR else None


def delivery_target(sessions: sessionmaker[Session], delivery_id: str):
    """The delivery with its webhook (None if either is gone)."""
    with sessions() as session:
        row = session.execute(select(WebhookDelivery, Webhook).join(
            Webhook, Webhook.id == WebhookDelivery.webhook_id).where(
            WebhookDelivery.id == delivery_id)).first()
        return None if row is None else (row[0], row[1])


def record_attempt(sessions: sessionmaker[Session], delivery_id: str, attempt: int, status: str,
                   now: datetime, http_status: int | None = None,
                   error: str | None = None) -> None:
    """An attempt's result on the delivery's history row."""
    values = dict(attempt=attempt, status=status, http_status=http_status, error=error)
    if status == DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    with sessions.begin() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                        .values(**values))
