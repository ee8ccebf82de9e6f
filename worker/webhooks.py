"""The deliver_webhook job: one signed POST of one event to one webhook, its result written on
the delivery's history row, then done, another attempt at the policy's time, or failed."""
from __future__ import annotations

import json

import requests

from app import crypto
from app.errors import ConfigError
from app.queue.jobs import ClaimedJob
from app.services import webhooks
from app.statuses import DeliveryStatus
from worker.jobs import JobContext, JobFailed, RetryAt

USER_AGENT = "post-scheduler-webhooks/1"


def deliver(ctx: JobContext, job: ClaimedJob) -> dict:
    now, delivery_id = ctx.clock(), str(job.payload["delivery_id"])
    target = webhooks.delivery_target(ctx.sessions, delivery_id)
    if target is None:
        raise JobFailed(f"webhook delivery {delivery_id} no longer exists")
    delivery, hook = target
    if hook.disabled_at is not None:
        return _give_up(ctx, job, delivery.id, "the webhook was deleted before this delivery")
    # Checked again at each attempt: what a name resolves to can change after it was accepted.
    why = webhooks.refused_url(hook.url, bool(ctx.settings.webhook_allow_private))
    if why:
        return _give_up(ctx, job, delivery.id, f"webhook url refused: {why}")
    http_status: int | None
    error: str | None
    try:
        secret = crypto.unseal(hook.secret_encrypted, "a webhook secret",
                               keys=crypto.KeyRing.of(ctx.settings))
    except ConfigError as exc:  # tried again like a receiver's error: the keys may be fixed
        http_status, error = None, str(exc)
    else:
        http_status, error = _post(ctx, hook.url, secret, delivery.id, delivery.payload, now)
    if error is None:
        webhooks.record_attempt(ctx.sessions, delivery.id, job.attempt, DeliveryStatus.DELIVERED, ctx.clock(),
                                http_status)
        return {"delivery_id": delivery.id, "http_status": http_status}
    when = webhooks.next_attempt_at(delivery.created_at, job.attempt, ctx.clock())
    if when is None:
        return _give_up(ctx, job, delivery.id, f"{error}; gave up after {job.attempt} attempts "
                        f"over {webhooks.RETRY_FOR}", http_status)
    webhooks.record_attempt(ctx.sessions, delivery.id, job.attempt, DeliveryStatus.RETRYING, ctx.clock(),
                            http_status, error)
    raise RetryAt(when, error)


def _post(ctx: JobContext, url: str, secret: str, delivery_id: str, payload: dict,
          now) -> tuple[int | None, str | None]:
    """(HTTP status, error or None when the receiver took it with a 2xx)."""
    body = json.dumps({"id": delivery_id, **payload}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Scheduler-Event": payload["event"], "X-Scheduler-Delivery": delivery_id,
               webhooks.SIGNATURE_HEADER: webhooks.sign(secret, int(now.timestamp()), body)}
    timeout = ctx.settings.webhook_timeout
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the URL checked is the one used
        try:
            with session.post(url, data=body, headers=headers, timeout=(timeout, timeout),
                              allow_redirects=False, stream=True) as response:
                status = response.status_code
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    if 200 <= status < 300:
        return status, None
    return status, f"the receiver answered HTTP {status}"


def _give_up(ctx: JobContext, job: ClaimedJob, delivery_id: str, error: str,
             http_status: int | None = None) -> dict:
    webhooks.record_attempt(ctx.sessions, delivery_id, job.attempt, DeliveryStatus.FAILED, ctx.clock(),
                            http_status, error)
    raise JobFailed(error)
