"""GET /api/queue/health: the dashboard's figures and rule verdicts as JSON, for scripts."""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from pydantic import Field

from app.api.schemas import Out
from app.api.spec import Api, sessions
from app.services import health
from app.timeutil import utcnow

api = Api("queue_health", "operations")


class Verdict(Out):
    rule: str
    text: str
    status: str
    seen: str


class Issue(Out):
    postId: str
    content: str
    platform: str
    outcome: str
    attempt: int
    at: datetime | None
    httpStatus: int | None
    errorCode: str | None
    message: str | None


class Run(Out):
    workerId: str
    startedAt: datetime
    finishedAt: datetime | None
    seconds: float | None


class Account(Out):
    id: str
    platform: str
    name: str


class QueueHealth(Out):
    status: str = Field(description="healthy | degraded | unhealthy: the worst rule's verdict")
    rules: list[Verdict]
    depth: dict[str, int] = Field(description="post_schedule rows by status")
    stuck: int
    oldestDueSeconds: float | None
    failureRateLastHour: float | None
    lastWorkerRunAt: datetime | None
    publishedPerMinute: list[int] = Field(description="last 60 minutes, oldest first")
    successRate24h: float | None
    avgPublishSeconds24h: float | None
    avgLatenessSeconds24h: float | None
    lastIssues: list[Issue]
    latestRuns: list[Run]
    needsReconnect: list[Account]


@api.route("GET", "/api/queue/health", summary="Queue health figures and rule verdicts",
           response=QueueHealth)
def queue_health(company_id: str):
    settings = current_app.extensions["scheduler"]["settings"]
    f = health.gather(sessions(), company_id, utcnow(), settings.lock_timeout)
    status, verdicts = health.evaluate(f)
    return QueueHealth(
        status=status, rules=verdicts, depth=f.depth, stuck=f.stuck,
        oldestDueSeconds=f.oldest_due_seconds, failureRateLastHour=f.failure_rate,
        lastWorkerRunAt=f.last_run_at, publishedPerMinute=f.throughput,
        successRate24h=f.success_rate_24h, avgPublishSeconds24h=f.avg_publish_seconds_24h,
        avgLatenessSeconds24h=f.avg_lateness_seconds_24h, lastIssues=f.issues,
        latestRuns=f.runs, needsReconnect=f.needs_reconnect)
