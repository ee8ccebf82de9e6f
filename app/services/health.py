"""Queue health for one company: the figures the dashboard, /api/queue/health and the rules
read, and the rules that turn them into healthy / degraded / unhealthy.

The rules are plain functions of the figures, so each is tested without a database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import PostDetail, PostSchedule, PublishAttempt, SocialAccount, WorkerRun
from app.statuses import AccountStatus, Outcome, QueueStatus

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
ORDER = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
LATE_DEGRADED, LATE_UNHEALTHY = 60, 300        # seconds the oldest due post has waited
FAILURE_DEGRADED, FAILURE_UNHEALTHY = 0.10, 0.50
FAILURE_MIN_ATTEMPTS = 5                        # fewer attempts say nothing about a rate
WORKER_SILENCE = 180                            # seconds without a worker run
NOT_PUBLISHED = (Outcome.FAILED, Outcome.RETRY, Outcome.UNKNOWN)  # deferred is waiting, not failing


@dataclass
class Figures:
    now: datetime
    lock_timeout: float
    depth: dict[str, int]
    stuck: int
    oldest_due_seconds: float | None
    attempts_last_hour: dict[str, int]
    last_run_at: datetime | None
    throughput: list[int] = field(default_factory=list)  # published per minute, oldest first
    success_rate_24h: float | None = None
    avg_publish_seconds_24h: float | None = None
    avg_lateness_seconds_24h: float | None = None
    issues: list[dict] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    needs_reconnect: list[dict] = field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        finished = sum(n for outcome, n in self.attempts_last_hour.items()
                       if outcome != Outcome.DEFERRED)
        if finished < FAILURE_MIN_ATTEMPTS:
            return None
        return sum(self.attempts_last_hour.get(o, 0) for o in NOT_PUBLISHED) / finished


@dataclass(frozen=True)
class Rule:
    name: str
    text: str
    judge: Callable[[Figures], tuple[str, str]]  # (status, what was seen)


def _stuck(f: Figures) -> tuple[str, str]:
    seen = f"{f.stuck} row(s) processing for more than {f.lock_timeout:g} s"
    return (UNHEALTHY if f.stuck else HEALTHY), seen


def _lateness(f: Figures) -> tuple[str, str]:
    if f.oldest_due_seconds is None:
        return HEALTHY, "no post is waiting"
    late = f.oldest_due_seconds
    status = UNHEALTHY if late > LATE_UNHEALTHY else DEGRADED if late > LATE_DEGRADED else HEALTHY
    return status, f"the oldest due post has waited {late:.0f} s"


def _failures(f: Figures) -> tuple[str, str]:
    rate = f.failure_rate
    if rate is None:
        return HEALTHY, f"fewer than {FAILURE_MIN_ATTEMPTS} attempts in the last hour"
    status = (UNHEALTHY if rate > FAILURE_UNHEALTHY else
              DEGRADED if rate > FAILURE_DEGRADED else HEALTHY)
    return status, f"{rate:.0%} of the last hour's attempts did not publish"


def _worker(f: Figures) -> tuple[str, str]:
    if f.last_run_at is None:
        return UNHEALTHY, "no worker run yet: is cron running worker_trigger.py?"
    age = (f.now - f.last_run_at).total_seconds()
    return (UNHEALTHY if age > WORKER_SILENCE else HEALTHY), f"last worker run {age:.0f} s ago"


RULES = [
    Rule("stuck", "Unhealthy if any post has been processing longer than the lock timeout "
                  "(its worker died; recovery will retry it).", _stuck),
    Rule("lateness", f"Degraded if the oldest due pending post has waited more than "
                     f"{LATE_DEGRADED} s, unhealthy past {LATE_UNHEALTHY} s.", _lateness),
    Rule("failures", f"Degraded if more than {FAILURE_DEGRADED:.0%} of the last hour's attempts "
                     f"did not publish, unhealthy past {FAILURE_UNHEALTHY:.0%} "
                     f"(from {FAILURE_MIN_ATTEMPTS} attempts on; rate-limit waits do not count).",
         _failures),
    Rule("worker", f"Unhealthy if no worker run started in the last {WORKER_SILENCE // 60} "
                   "minutes.", _worker),
]


def evaluate(figures: Figures) -> tuple[str, list[dict]]:
    """The overall status (the worst rule's) and each rule's verdict."""
    verdicts = []
    for rule in RULES:
        status, seen = rule.judge(figures)
        verdicts.append({"rule": rule.name, "text": rule.text, "status": status, "seen": seen})
    overall = max((v["status"] for v in verdicts), key=ORDER.__getitem__)
    return overall, verdicts


# -- reading the figures ---------------------------------------------------------------------

def gather(sessions: sessionmaker[Session], company_id: str, now: datetime,
           lock_timeout: float) -> Figures:
    with sessions() as session:
        mine = select(PostSchedule.id).join(PostDetail).where(PostDetail.company_id == company_id)
        depth = dict(session.execute(
            select(PostSchedule.status, func.count()).join(PostDetail)
            .where(PostDetail.company_id == company_id).group_by(PostSchedule.status)).all())
        stuck = session.scalar(select(func.count()).select_from(PostSchedule).where(
            PostSchedule.id.in_(mine), PostSchedule.status == QueueStatus.PROCESSING,
            PostSchedule.locked_at < now - timedelta(seconds=lock_timeout)))
        oldest = session.scalar(select(func.min(PostSchedule.run_at)).where(
            PostSchedule.id.in_(mine), PostSchedule.status == QueueStatus.PENDING, PostSchedule.run_at <= now))
        # outcome IS NOT NULL above: the keys are outcomes, never None
        hour = cast(dict[str, int], dict(session.execute(
            select(PublishAttempt.outcome, func.count()).where(
                PublishAttempt.post_schedule_id.in_(mine), PublishAttempt.outcome.is_not(None),
                PublishAttempt.finished_at >= now - timedelta(hours=1))
            .group_by(PublishAttempt.outcome)).all()))
        last_run = session.scalar(select(func.max(WorkerRun.started_at)))
        figures = Figures(now=now, lock_timeout=lock_timeout,
                          depth={s: depth.get(s, 0) for s in QueueStatus}, stuck=stuck or 0,
                          oldest_due_seconds=(now - oldest).total_seconds() if oldest else None,
                          attempts_last_hour=hour, last_run_at=last_run)
        _add_history(session, figures, mine)
        _add_lists(session, figures, company_id, mine)
    return figures


def _add_history(session: Session, f: Figures, mine) -> None:
    """Throughput per minute (last hour) and the last day's rates and durations."""
    day_ago = f.now - timedelta(days=1)
    # finished_at >= day_ago: never NULL here
    published = cast(list[tuple[datetime, datetime]], session.execute(
        select(PublishAttempt.started_at, PublishAttempt.finished_at).where(
            PublishAttempt.post_schedule_id.in_(mine), PublishAttempt.outcome == Outcome.PUBLISHED,
            PublishAttempt.finished_at >= day_ago)).all())
    f.throughput = [0] * 60
    for _, finished in published:
        minutes_ago = int((f.now - finished).total_seconds() // 60)
        if 0 <= minutes_ago < 60:
            f.throughput[59 - minutes_ago] += 1
    failed = session.scalar(select(func.count()).select_from(PublishAttempt).where(
        PublishAttempt.post_schedule_id.in_(mine), PublishAttempt.outcome.in_(NOT_PUBLISHED),
        PublishAttempt.finished_at >= day_ago))
    if published or failed:
        f.success_rate_24h = len(published) / (len(published) + (failed or 0))
    if published:
        f.avg_publish_seconds_24h = sum((b - a).total_seconds() for a, b in published) / len(published)
    # published_at >= day_ago: never NULL here
    late = cast(list[tuple[datetime, datetime]], session.execute(
        select(PostSchedule.run_at, PostDetail.published_at).join(PostDetail).where(
            PostSchedule.id.in_(mine), PostDetail.published_at >= day_ago)).all())
    if late:
        f.avg_lateness_seconds_24h = sum(max(0.0, (p - r).total_seconds()) for r, p in late) / len(late)


def _run_state(run: WorkerRun, now: datetime, lock_timeout: float) -> str:
    """`finished`; `running`; or `abandoned`: no finish after the lock timeout, by which time
    the process must have died (a live run stops claiming long before), and its rows are
    recovered by the next run."""
    if run.finished_at is not None:
        return "finished"
    return "abandoned" if (now - run.started_at).total_seconds() > lock_timeout else "running"


def _add_lists(session: Session, f: Figures, company_id: str, mine) -> None:
    issues = session.execute(
        select(PublishAttempt, PostDetail.id, PostDetail.content, SocialAccount.platform)
        .join(PostSchedule, PostSchedule.id == PublishAttempt.post_schedule_id)
        .join(PostDetail, PostDetail.id == PostSchedule.post_detail_id)
        .join(SocialAccount, SocialAccount.id == PostDetail.social_account_id)
        .where(PostDetail.company_id == company_id,
               PublishAttempt.outcome.in_((*NOT_PUBLISHED, Outcome.DEFERRED)))
        .order_by(PublishAttempt.finished_at.desc(), PublishAttempt.id.desc()).limit(10)).all()
    f.issues = [{"postId": post_id, "content": content[:80], "platform": platform,
                 "outcome": a.outcome, "attempt": a.attempt, "at": a.finished_at,
                 "httpStatus": a.http_status, "errorCode": a.error_code, "message": a.error_message}
                for a, post_id, content, platform in issues]
    # Worker runs serve every company: their timing is shown, not their counts.
    f.runs = [{"workerId": r.worker_id, "startedAt": r.started_at, "finishedAt": r.finished_at,
               "seconds": (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
               "state": _run_state(r, f.now, f.lock_timeout)}
              for r in session.scalars(select(WorkerRun).order_by(WorkerRun.started_at.desc())
                                       .limit(10))]
    f.needs_reconnect = [{"id": a.id, "platform": a.platform, "name": a.display_name or a.external_id}
                         for a in session.scalars(select(SocialAccount).where(
                             SocialAccount.company_id == company_id,
                             SocialAccount.status == AccountStatus.NEEDS_RECONNECT))]
