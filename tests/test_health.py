"""Each queue-health rule on its own (no database), then the figures read from a real one,
and /api/queue/health and /metrics over them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app.models import PostSchedule, SocialAccount
from app.services import health
from app.services.health import DEGRADED, HEALTHY, UNHEALTHY, Figures, evaluate
from worker.cycle import Worker
from worker.publishers.base import PermanentError, RateLimitedError

from conftest import T0, add_due_posts, make_tenant
from test_queue import Scripted

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def figures(**overrides) -> Figures:
    base = dict(now=NOW, lock_timeout=600, depth={}, stuck=0, oldest_due_seconds=None,
                attempts_last_hour={"published": 20}, last_run_at=NOW - timedelta(seconds=30))
    return Figures(**{**base, **overrides})


def verdict(f: Figures, rule: str) -> str:
    return next(v["status"] for v in evaluate(f)[1] if v["rule"] == rule)


def test_all_quiet_is_healthy():
    status, verdicts = evaluate(figures())
    assert status == HEALTHY and {v["status"] for v in verdicts} == {HEALTHY}
    assert [v["rule"] for v in verdicts] == ["stuck", "lateness", "failures", "worker"]


@pytest.mark.parametrize("stuck,expected", [(0, HEALTHY), (1, UNHEALTHY), (7, UNHEALTHY)])
def test_stuck_rows(stuck, expected):
    assert verdict(figures(stuck=stuck), "stuck") == expected


@pytest.mark.parametrize("late,expected", [(None, HEALTHY), (0, HEALTHY), (60, HEALTHY),
                                           (61, DEGRADED), (300, DEGRADED), (301, UNHEALTHY)])
def test_lateness_of_the_oldest_due_post(late, expected):
    assert verdict(figures(oldest_due_seconds=late), "lateness") == expected


@pytest.mark.parametrize("attempts,expected", [
    ({"published": 9, "failed": 1}, HEALTHY),             # 10 %: not more than 10 %
    ({"published": 8, "failed": 1, "retry": 1}, DEGRADED),  # 20 %
    ({"published": 5, "failed": 5}, DEGRADED),             # 50 %: not more than 50 %
    ({"published": 4, "failed": 5, "unknown": 1}, UNHEALTHY),
    ({"failed": 4}, HEALTHY),                              # too few attempts to judge
    ({"published": 5, "deferred": 100}, HEALTHY),          # rate-limit waits are not failures
])
def test_failure_rate_of_the_last_hour(attempts, expected):
    assert verdict(figures(attempts_last_hour=attempts), "failures") == expected


@pytest.mark.parametrize("age,expected", [(None, UNHEALTHY), (10, HEALTHY), (180, HEALTHY),
                                          (181, UNHEALTHY)])
def test_no_worker_run_lately(age, expected):
    last = None if age is None else NOW - timedelta(seconds=age)
    assert verdict(figures(last_run_at=last), "worker") == expected


def test_the_overall_status_is_the_worst_rule():
    assert evaluate(figures(oldest_due_seconds=100))[0] == DEGRADED
    assert evaluate(figures(oldest_due_seconds=100, stuck=1))[0] == UNHEALTHY


# -- figures from a real database ----------------------------------------------------------------

def seed(db):
    """Acme: 3 published, 1 failed, 1 deferred (pending again), 2 pending due, 1 stuck;
    another company with posts of its own that must not count."""
    acme, other = make_tenant(db, name="Acme"), make_tenant(db, name="Other")
    add_due_posts(db, other, 4, run_at=T0 - timedelta(minutes=5))
    add_due_posts(db, acme, 5, run_at=T0 - timedelta(minutes=5))
    at = T0 + timedelta(minutes=10)
    script = [None, None, None, PermanentError("no"), RateLimitedError(
        "slow down", retry_at=at + timedelta(hours=1))]
    settings = db.settings.__class__(**{**db.settings.__dict__, "concurrency": 1, "batch_size": 1})
    with db.sessions.begin() as session:  # only Acme's posts are due for this run
        session.execute(update(PostSchedule).where(PostSchedule.post_detail_id.in_(
            _posts_of(db, other))).values(run_at=at + timedelta(days=1)))
    Worker(settings, db.sessions, {"sandbox": Scripted(*script)}, clock=lambda: at).run()
    add_due_posts(db, acme, 2, run_at=at - timedelta(seconds=90))
    (stuck,) = add_due_posts(db, acme, 1, run_at=at - timedelta(hours=1))
    with db.sessions.begin() as session:
        session.execute(update(PostSchedule).where(PostSchedule.id == stuck).values(
            status="processing", locked_at=at - timedelta(minutes=11), lock_token="x" * 32))
        session.execute(update(SocialAccount).where(SocialAccount.id == other.account_id)
                        .values(status="needs_reconnect"))
    return acme, other, at


def _posts_of(db, tenant):
    return [r["id"] for r in db.rows("SELECT id FROM post_details WHERE company_id = :c",
                                     c=tenant.company_id)]


def test_gathered_figures_are_the_companys_own(db):
    acme, other, at = seed(db)
    f = health.gather(db.sessions, acme.company_id, at, 600)
    assert f.depth == {"pending": 3, "processing": 1, "done": 3, "failed": 1, "cancelled": 0,
                       "missed": 0, "waiting": 0}
    assert f.stuck == 1
    assert f.oldest_due_seconds == pytest.approx(90, abs=0.01)
    assert f.attempts_last_hour == {"published": 3, "failed": 1, "deferred": 1}
    assert sum(f.throughput) == 3 and f.throughput[-1] == 3
    assert f.success_rate_24h == pytest.approx(0.75)
    assert sorted(i["outcome"] for i in f.issues) == ["deferred", "failed"]
    assert {i["message"] for i in f.issues} == {"no", "slow down"}
    assert f.needs_reconnect == []  # Other's account is Other's business
    assert health.gather(db.sessions, other.company_id, at, 600).needs_reconnect[0]["id"] == \
        other.account_id
    assert evaluate(f)[0] == UNHEALTHY  # the stuck row


def test_queue_health_endpoint(db, tenant, api):
    response = api.get("/api/queue/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == UNHEALTHY  # no worker run yet
    assert body["depth"]["pending"] == 0 and len(body["publishedPerMinute"]) == 60
    assert [r["rule"] for r in body["rules"]] == ["stuck", "lateness", "failures", "worker"]
    assert api.get("/api/queue/health", key=None).status_code == 401


def test_metrics(db, tenant, api):
    add_due_posts(db, tenant, 3, run_at=T0)
    Worker(db.settings, db.sessions, {"sandbox": Scripted(None, PermanentError("no"))},
           clock=lambda: T0 + timedelta(seconds=1)).run()
    add_due_posts(db, tenant, 1, run_at=datetime.now(timezone.utc) - timedelta(minutes=2))
    text = api.get("/metrics", key=None).get_data(as_text=True)
    lines = set(text.splitlines())
    assert 'scheduler_queue_depth{status="done"} 2.0' in lines
    assert 'scheduler_queue_depth{status="failed"} 1.0' in lines
    assert 'scheduler_queue_depth{status="pending"} 1.0' in lines
    assert 'scheduler_publish_attempts_total{outcome="published",platform="sandbox"} 2.0' in lines
    assert 'scheduler_publish_attempts_total{outcome="failed",platform="sandbox"} 1.0' in lines
    assert 'scheduler_publish_duration_seconds_count{platform="sandbox"} 2.0' in lines
    assert 'scheduler_publish_duration_seconds_bucket{le="+Inf",platform="sandbox"} 2.0' in lines
    assert 'scheduler_publish_duration_seconds_bucket{le="0.1",platform="sandbox"} 2.0' in lines
    oldest = next(line for line in lines if line.startswith("scheduler_oldest_due_pending_seconds "))
    assert float(oldest.split()[1]) == pytest.approx(120, abs=30)
    run = next(line for line in lines if line.startswith("scheduler_last_worker_run_timestamp_seconds "))
    assert float(run.split()[1]) == pytest.approx(T0.timestamp(), abs=2)


def test_metrics_token(db, tenant):
    from conftest import ApiClient, Db

    guarded = Db(db.kind, db.settings.__class__(**{**db.settings.__dict__, "metrics_token": "tok"}),
                 db.engine, db.sessions)
    api = ApiClient(guarded, tenant.api_key)
    try:
        assert api.get("/metrics", key=None).status_code == 401
        assert api.get("/metrics", key="wrong").status_code == 401
        assert api.get("/metrics", key="tok").status_code == 200
    finally:
        api.close()
