"""GET /metrics: Prometheus text format, read from the database at each scrape.

The worker is a short-lived cron process, so no process holds counters in memory: every
figure comes from the tables (post_schedule, publish_attempts, worker_runs), which makes the
metrics the same whichever API process is scraped, and correct across restarts.
"""
from __future__ import annotations

import hmac
from typing import Any, cast

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
)
from sqlalchemy import ColumnClause, case, func, literal_column, select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Unauthorized
from app.models import PostDetail, PostSchedule, PublishAttempt, SocialAccount, WorkerRun
from app.statuses import Outcome, QueueStatus
from app.timeutil import utcnow

BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds per publish request
COUNTED = tuple(Outcome)
bp = Blueprint("metrics", __name__)


class DatabaseCollector:
    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self):
        now = utcnow()
        with self.sessions() as session:
            dialect = session.get_bind().dialect.name
            depth = dict(session.execute(select(PostSchedule.status, func.count())
                                         .group_by(PostSchedule.status)).all())
            oldest = session.scalar(select(func.min(PostSchedule.run_at)).where(
                PostSchedule.status == QueueStatus.PENDING, PostSchedule.run_at <= now))
            # outcome IN (COUNTED): never NULL here
            by_platform = cast(list[tuple[str, str, int]], session.execute(
                select(SocialAccount.platform, PublishAttempt.outcome, func.count())
                .select_from(PublishAttempt)
                .join(PostSchedule, PostSchedule.id == PublishAttempt.post_schedule_id)
                .join(PostDetail, PostDetail.id == PostSchedule.post_detail_id)
                .join(SocialAccount, SocialAccount.id == PostDetail.social_account_id)
                .where(PublishAttempt.outcome.in_(COUNTED))
                .group_by(SocialAccount.platform, PublishAttempt.outcome)).all())
            durations = session.execute(_histogram_query(dialect)).all()
            last_run = session.scalar(select(func.max(WorkerRun.started_at)))

        gauge = GaugeMetricFamily("scheduler_queue_depth", "post_schedule rows by status",
                                  labels=["status"])
        for status in QueueStatus:
            gauge.add_metric([status], depth.get(status, 0))
        yield gauge
        yield GaugeMetricFamily("scheduler_oldest_due_pending_seconds",
                                "How long the oldest due pending post has waited (0 if none)",
                                value=(now - oldest).total_seconds() if oldest else 0)
        counter = CounterMetricFamily("scheduler_publish_attempts",
                                      "Finished publish attempts by platform and outcome",
                                      labels=["platform", "outcome"])
        for platform, outcome, count in by_platform:
            counter.add_metric([platform, outcome], count)
        yield counter
        histogram = HistogramMetricFamily("scheduler_publish_duration_seconds",
                                          "Duration of successful publish attempts",
                                          labels=["platform"])
        for platform, total, count, *cumulative in durations:
            buckets = [(str(b), n or 0) for b, n in zip(BUCKETS, cumulative)] + [("+Inf", count)]
            histogram.add_metric([platform], buckets, float(total or 0))
        yield histogram
        yield GaugeMetricFamily("scheduler_last_worker_run_timestamp_seconds",
                                "Unix time the latest worker run started (0 if none)",
                                value=last_run.timestamp() if last_run else 0)


def _histogram_query(dialect: str):
    seconds: ColumnClause[Any]
    if dialect == "sqlite":
        seconds = literal_column("(julianday(publish_attempts.finished_at) - "
                                 "julianday(publish_attempts.started_at)) * 86400.0")
    elif dialect == "postgresql":
        seconds = literal_column("EXTRACT(EPOCH FROM (publish_attempts.finished_at - "
                                 "publish_attempts.started_at))")
    else:
        seconds = literal_column("TIMESTAMPDIFF(MICROSECOND, publish_attempts.started_at, "
                                 "publish_attempts.finished_at) / 1000000.0")
    return (select(SocialAccount.platform, func.sum(seconds), func.count(),
                   *[func.sum(case((seconds <= b, 1), else_=0)) for b in BUCKETS])
            .select_from(PublishAttempt)
            .join(PostSchedule, PostSchedule.id == PublishAttempt.post_schedule_id)
            .join(PostDetail, PostDetail.id == PostSchedule.post_detail_id)
            .join(SocialAccount, SocialAccount.id == PostDetail.social_account_id)
            .where(PublishAttempt.outcome == Outcome.PUBLISHED)
            .group_by(SocialAccount.platform))


def make_registry(sessions: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(sessions))
    return registry


@bp.get("/metrics")
def metrics():
    scheduler = current_app.extensions["scheduler"]
    token = scheduler["settings"].metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Unauthorized("send `Authorization: Bearer <SCHEDULER_METRICS_TOKEN>`")
    return Response(generate_latest(scheduler["metrics"]), content_type=CONTENT_TYPE_LATEST)
