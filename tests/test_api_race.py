"""Cancel and edit against a worker claiming at the same time, on real MariaDB and PostgreSQL: a
post the worker has claimed cannot be cancelled or edited (409), and a cancelled post is never
published."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app.models import PostDetail, PostSchedule, PublishAttempt
from worker import queue
from worker.cycle import Worker
from worker.publishers.base import PublishResult

from conftest import ApiClient, add_due_posts

DUE = datetime.now(timezone.utc) - timedelta(seconds=5)


class Recording:
    platform = "sandbox"

    def __init__(self, delay: float = 0.002):
        self.published: list[str] = []
        self.delay = delay

    def publish(self, post, account):
        time.sleep(self.delay)
        self.published.append(post.id)
        return PublishResult(f"sb-{post.schedule_id}")


def post_ids(db, schedule_ids):
    with db.sessions() as session:
        return list(session.scalars(select(PostSchedule.post_detail_id)
                                    .where(PostSchedule.id.in_(schedule_ids))
                                    .order_by(PostSchedule.run_at)))


def test_a_claim_in_progress_makes_cancel_wait_then_refuse(server_db, tenant, api):
    (schedule_id,) = add_due_posts(server_db, tenant, 1, run_at=DUE)
    (post_id,) = post_ids(server_db, [schedule_id])
    claim = server_db.sessions()
    claim.begin()
    claim.scalars(queue.due_query(datetime.now(timezone.utc), 1)).all()  # the claim's locking read
    claim.execute(update(PostSchedule).where(PostSchedule.id == schedule_id)
                  .values(status="processing", lock_token="t" * 32))
    answers = {}
    threads = [threading.Thread(target=lambda v=verb, m=method, b=body: answers.__setitem__(
        v, api.call(m, f"/scheduled-posts/{post_id}", json=b)))
        for verb, method, body in [("cancel", "DELETE", None), ("edit", "PATCH", {"content": "x"})]]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert all(t.is_alive() for t in threads), "cancel/edit must wait for the claim's row lock"
    claim.commit()
    claim.close()
    for t in threads:
        t.join(10)
    for verb in ("cancel", "edit"):
        assert answers[verb].status_code == 409, answers[verb].get_json()
        assert "being published right now" in answers[verb].get_json()["error"]["message"]
    assert server_db.scalar("SELECT status FROM post_details WHERE id = :p", p=post_id) == "pending"
    assert server_db.scalar("SELECT content FROM post_details WHERE id = :p", p=post_id) == "hello 0"


def test_a_post_being_cancelled_is_skipped_by_the_claim(server_db, tenant, monkeypatch):
    """The cancel's conditional UPDATE holds the row; a claim at that moment skips it, and
    once the cancel commits the post is never claimed."""
    from app.services import posts

    (schedule_id,) = add_due_posts(server_db, tenant, 1, run_at=DUE)
    (post_id,) = post_ids(server_db, [schedule_id])
    inside, release = threading.Event(), threading.Event()
    original = posts._hold_pending

    def hold_then_wait(*args, **kwargs):
        original(*args, **kwargs)
        inside.set()
        release.wait(10)

    monkeypatch.setattr(posts, "_hold_pending", hold_then_wait)
    result = {}
    cancel = threading.Thread(target=lambda: result.setdefault("post", posts.cancel_post(
        server_db.sessions, tenant.company_id, post_id, datetime.now(timezone.utc))))
    cancel.start()
    assert inside.wait(10)
    now = datetime.now(timezone.utc)
    started = time.monotonic()
    assert queue.claim_due(server_db.sessions, now, 10, "racer") == []
    assert time.monotonic() - started < 2, "the claim must skip the locked row, not wait on it"
    release.set()
    cancel.join(10)
    assert result["post"].status == "cancelled"
    assert queue.claim_due(server_db.sessions, now, 10, "racer") == []


@pytest.mark.parametrize("rounds", [3])
def test_cancel_racing_a_worker_never_publishes_a_cancelled_post(server_db, tenant, api, rounds):
    """Workers drain 150 due posts from the oldest while the API cancels them from the newest.
    Each post ends cancelled (cancel said 200, nothing was sent) or published (cancel said 409)."""
    for _ in range(rounds):
        _race_once(server_db, tenant, api)


def _race_once(db, tenant, api: ApiClient):
    ids = post_ids(db, add_due_posts(db, tenant, 150, run_at=DUE))
    publisher = Recording()
    settings = db.settings.__class__(**{**db.settings.__dict__, "batch_size": 5, "concurrency": 4})
    answers: dict[str, int] = {}

    def cancel_all():
        for post_id in reversed(ids):
            answers[post_id] = api.delete(f"/scheduled-posts/{post_id}").status_code

    workers = [threading.Thread(target=Worker(settings, db.sessions, {"sandbox": publisher}).run)
               for _ in range(2)]
    canceller = threading.Thread(target=cancel_all)
    for t in [*workers, canceller]:
        t.start()
    for t in [*workers, canceller]:
        t.join(120)
    with db.sessions() as session:
        status = dict(session.execute(select(PostDetail.id, PostDetail.status)
                                      .where(PostDetail.id.in_(ids))).all())
        attempted = set(session.scalars(
            select(PostSchedule.post_detail_id).join(
                PublishAttempt, PublishAttempt.post_schedule_id == PostSchedule.id)
            .where(PostSchedule.post_detail_id.in_(ids))))
    cancelled = {p for p in ids if answers[p] == 200}
    refused = {p for p in ids if answers[p] == 409}
    assert cancelled | refused == set(ids), set(answers.values())
    assert cancelled and refused, "the race did not happen: tune the sizes"
    assert all(status[p] == "cancelled" for p in cancelled)
    assert not cancelled & set(publisher.published), "a cancelled post was published"
    assert not cancelled & attempted
    assert all(status[p] == "published" for p in refused)
    assert sorted(publisher.published) == sorted(refused)  # each exactly once
    with db.engine.begin() as conn:  # empty the table for the next round
        conn.exec_driver_sql("DELETE FROM post_details")
