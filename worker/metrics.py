"""The collect_metrics job: one account's posts measured at one checkpoint, in as few calls as
its platform allows (the publisher's `metrics_batch` ids a call), stored in post_metrics. The
job is one per account, checkpoint and 10-minute bucket (app/services/metrics.py): it measures
every post of the account that reaches the checkpoint in its bucket and is not measured yet.

A platform takes part by giving its publisher `fetch_metrics(platform_post_ids, account) ->
{platform_post_id: Measured}` and `metrics_batch`; a publisher without them (yet) has its jobs
finish with nothing measured. Rate limits defer the job without spending an attempt, until
GIVE_UP_AFTER past its due time; a refused token or permission fails it; outages retry.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from app import crypto
from app.queue.jobs import ClaimedJob
from app.services import metrics
from app.services.metrics import Measured
from worker.jobs import Defer, JobContext, JobFailed
from worker.publishers.base import Account, AuthError, PermanentError, RateLimitedError

DEFAULT_WAIT = timedelta(minutes=15)  # when a rate limit does not say until when


def collect(ctx: JobContext, job: ClaimedJob) -> dict:
    payload, now = job.payload, ctx.clock()
    checkpoint, due = payload["checkpoint"], datetime.fromisoformat(payload["due"])
    target = metrics.to_measure(ctx.sessions, payload["account_id"], checkpoint, due)
    if target is None or not target.posts:
        return {"checkpoint": checkpoint, "measured": 0}
    account = target.account
    publisher = ctx.publishers.get(account.platform)
    fetch = getattr(publisher, "fetch_metrics", None)
    if fetch is None:
        return {"checkpoint": checkpoint, "measured": 0,
                "skipped": f"no metrics reader for {account.platform} in this worker"}
    token = crypto.unseal(account.access_token_encrypted, keys=crypto.KeyRing.of(ctx.settings))
    credentials = Account(account.id, account.platform, account.external_id,
                          account.display_name, token, account.auth_meta or {})
    measured: dict[str, Measured] = {}
    ids, size = list(target.posts), max(int(getattr(publisher, "metrics_batch", 1)), 1)
    try:
        for start in range(0, len(ids), size):
            answer = fetch(ids[start:start + size], credentials)
            measured.update({target.posts[pid]: m for pid, m in answer.items() if pid in target.posts})
    except RateLimitedError as exc:
        metrics.record(ctx.sessions, checkpoint, measured, now)
        when = exc.retry_at or now + (exc.retry_after or DEFAULT_WAIT)
        if when > due + metrics.GIVE_UP_AFTER:
            raise JobFailed(f"{exc.message}; given up: still rate limited "
                            f"{metrics.GIVE_UP_AFTER} after the collection was due") from None
        raise Defer(max(when, now + timedelta(seconds=1)), exc.message) from None
    except (AuthError, PermanentError) as exc:
        metrics.record(ctx.sessions, checkpoint, measured, now)
        raise JobFailed(exc.message) from None
    metrics.record(ctx.sessions, checkpoint, measured, now)
    return {"checkpoint": checkpoint, "measured": len(measured), "posts": len(ids)}
