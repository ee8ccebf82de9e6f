"""Webhooks: the API per company, the refusal of private addresses, and real signed deliveries
to a local HTTP server through deliver_webhook jobs (retried, with their history)."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import Job, PostDetail, WebhookDelivery
from app.services import webhooks
from app.services.accounts import mark_needs_reconnect
from worker import queue
from worker.cycle import Worker

from conftest import T0, add_due_posts, make_tenant
from fakes.webhook_receiver import WebhookReceiver


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (the README's five lines), written independently of the sender."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(parts["t"])) <= tolerance


def worker(db, at):
    settings = replace(db.settings, webhook_allow_private=1, webhook_timeout=5.0)
    return Worker(settings, db.sessions, clock=lambda: at)


def hook_for(db, tenant, url, events=("post.published", "post.failed", "post.missed")):
    return webhooks.create_webhook(db.sessions, tenant.company_id, url, list(events), T0,
                                   allow_private=True)


def deliveries(db) -> list[WebhookDelivery]:
    with db.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


# -- the API --------------------------------------------------------------------------------

def test_create_list_delete_and_the_secret_is_shown_once(sqlite, tenant, api):
    created = api.post("/webhooks", json={"url": "https://93.184.215.14/hooks",
                                          "events": ["post.published", "post.failed"]})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["post.published", "post.failed"]
    listed = api.get("/webhooks").get_json()["items"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    assert body["secret"] not in json.dumps(sqlite.rows("SELECT * FROM webhooks")[0], default=str)
    assert api.get(f"/webhooks/{body['id']}/deliveries").get_json() == {"items": []}
    assert api.delete(f"/webhooks/{body['id']}").status_code == 200
    assert api.get("/webhooks").get_json()["items"] == []
    assert api.get(f"/webhooks/{body['id']}/deliveries").status_code == 404


def test_another_companys_webhook_is_404(sqlite, tenant, api):
    other = make_tenant(sqlite, name="Other")
    hook, _ = hook_for(sqlite, other, "https://93.184.215.14/theirs")
    assert api.get(f"/webhooks/{hook.id}/deliveries").status_code == 404
    assert api.delete(f"/webhooks/{hook.id}").status_code == 404
    assert api.get("/webhooks").get_json()["items"] == []
    assert webhooks.list_webhooks(sqlite.sessions, other.company_id)[0].disabled_at is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook",
    "http://192.168.0.10/hook", "http://172.16.5.4/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook", "http://[fd00:ec2::254]/hook", "http://100.64.0.1/hook",
    "http://0.0.0.0/hook", "http://[::ffff:127.0.0.1]/hook",
])
def test_private_loopback_link_local_and_metadata_addresses_are_refused(sqlite, tenant, api, url):
    response = api.post("/webhooks", json={"url": url, "events": ["post.published"]})
    assert response.status_code == 422, response.get_json()
    assert "SCHEDULER_WEBHOOK_ALLOW_PRIVATE" in response.get_json()["error"]["fields"]["url"]


def test_a_public_name_resolving_to_a_private_address_is_refused():
    """The addresses decide, not the name: a name anyone can point at 10.0.0.5 is refused."""
    def resolve(host):
        return ["93.184.215.14", "10.0.0.5"]

    why = webhooks.refused_url("https://hooks.example.com/x", False, resolve)
    assert why and "10.0.0.5" in why
    assert webhooks.refused_url("https://hooks.example.com/x", False, lambda h: ["93.184.215.14"]) is None
    assert webhooks.refused_url("http://127.0.0.1/x", True) is None  # the setting allows it


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "events": ["post.published"]}, "url"),
    ({"url": "https://user:pw@93.184.215.14/x", "events": ["post.published"]}, "url"),
    ({"url": "https://93.184.215.14/x", "events": ["post.deleted"]}, "events"),
    ({"url": "https://93.184.215.14/x", "events": []}, "events"),
    ({"url": "https://93.184.215.14/x"}, "events"),
])
def test_bad_webhooks_are_refused_saying_which_field(sqlite, tenant, api, body, field):
    response = api.post("/webhooks", json=body)
    assert response.status_code == 422
    assert any(k.startswith(field) for k in response.get_json()["error"]["fields"]), response.get_json()


def test_the_webhook_endpoints_are_in_the_openapi_document(sqlite, tenant, api):
    paths = api.get("/openapi.json").get_json()["paths"]
    assert {"post", "get"} <= set(paths["/webhooks"])
    assert "delete" in paths["/webhooks/{webhook_id}"]
    assert "get" in paths["/webhooks/{webhook_id}/deliveries"]


# -- deliveries -----------------------------------------------------------------------------

def test_a_published_post_is_delivered_signed_to_a_real_receiver(db, tenant):
    with WebhookReceiver() as receiver:
        hook, secret = hook_for(db, tenant, receiver.url)
        add_due_posts(db, tenant, 2)
        at = T0 + timedelta(seconds=1)
        assert worker(db, at).run().published == 2
        worker(db, at).run()  # the deliveries, queued by the transition, go out
    assert len(receiver.received) == 2
    for got in receiver.received:
        assert verify(secret, got.headers["X-Scheduler-Signature"], got.body, int(at.timestamp()))
        assert not verify("whsec_wrong", got.headers["X-Scheduler-Signature"], got.body,
                          int(at.timestamp()))
        sent = json.loads(got.body)
        assert sent["event"] == "post.published" == got.headers["X-Scheduler-Event"]
        assert sent["data"]["platformPostId"].startswith("sandbox-")
        assert str(sent["id"]) == got.headers["X-Scheduler-Delivery"]
    assert [(d.status, d.attempt, d.http_status) for d in deliveries(db)] == [("delivered", 1, 200)] * 2


def test_a_receiver_answering_500_then_200_gets_a_retry(db, tenant, api):
    with WebhookReceiver(statuses=[500]) as receiver:
        hook, secret = hook_for(db, tenant, receiver.url)
        add_due_posts(db, tenant, 1, content="nope #sandbox-fail")
        at = T0 + timedelta(seconds=1)
        worker(db, at).run()
        worker(db, at).run()
        [first] = deliveries(db)
        assert (first.status, first.attempt, first.http_status) == ("retrying", 1, 500)
        worker(db, at + timedelta(seconds=30)).run()  # not due yet: the backoff is a minute
        assert len(receiver.received) == 1
        worker(db, at + timedelta(seconds=61)).run()
    assert [r.status for r in receiver.received] == [500, 200]
    first, second = receiver.received
    assert first.body == second.body  # the same delivery, signed again at its own time
    assert verify(secret, second.headers["X-Scheduler-Signature"], second.body,
                  int((at + timedelta(seconds=61)).timestamp()))
    assert json.loads(second.body)["event"] == "post.failed"
    history = api.get(f"/webhooks/{hook.id}/deliveries").get_json()["items"]
    assert [(d["status"], d["attempt"], d["httpStatus"]) for d in history] == [("delivered", 2, 200)]
    assert history[0]["payload"]["data"]["error"].startswith("sandbox: simulated rejection")


def test_a_delivery_is_given_up_after_24_hours_of_retries():
    first = T0
    waits, now, attempt = [], first, 1
    while (when := webhooks.next_attempt_at(first, attempt, now)) is not None:
        waits.append(when - now)
        now, attempt = when, attempt + 1
    assert waits[:3] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert max(waits) == webhooks.LONGEST_WAIT
    assert now <= first + webhooks.RETRY_FOR < now + webhooks.LONGEST_WAIT
    assert attempt < webhooks.MAX_ATTEMPTS  # the time limit ends it, not the backstop


def test_a_delivery_past_24_hours_fails_with_its_history(sqlite, tenant):
    hook, _ = hook_for(sqlite, tenant, "http://127.0.0.1:9/closed")  # nothing listens on 9
    add_due_posts(sqlite, tenant, 1, run_at=T0)
    worker(sqlite, T0 + timedelta(seconds=1)).run()
    worker(sqlite, T0 + timedelta(hours=23, minutes=59, seconds=30)).run()
    [d] = deliveries(sqlite)
    assert d.status == "failed" and d.attempt == 1 and "gave up" in d.error


def test_a_crash_between_the_transition_and_the_delivery_loses_nothing(db, tenant, monkeypatch):
    with WebhookReceiver() as receiver:
        hook_for(db, tenant, receiver.url)
        add_due_posts(db, tenant, 1)
        at = T0 + timedelta(seconds=1)
        # The event is written by the transition's own transaction: if it cannot be, neither is
        # the transition (the post stays claimed, to be recovered), so no transition lacks it.
        def broken(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(queue, "post_events", broken)
        worker(db, at).run()
        with db.sessions() as session:
            assert session.scalar(select(PostDetail.status)) == "pending"
        assert deliveries(db) == []
        monkeypatch.undo()
        # The process dies right after the transition commits, before any job runs ...
        later = at + timedelta(seconds=db.settings.lock_timeout + 1)
        w = worker(db, later)
        monkeypatch.setattr(w.jobs, "submit", lambda pool, spare: set())
        w.run()
        with db.sessions() as session:
            assert session.scalar(select(PostDetail.status)) == "published"
            assert session.scalar(select(Job.status).where(Job.kind == "deliver_webhook")) == "pending"
        assert receiver.received == []
        worker(db, later).run()  # ... and the next run delivers what it left
    assert [json.loads(r.body)["event"] for r in receiver.received] == ["post.published"]


def test_needs_reconnect_is_raised_once_per_transition(db, tenant):
    with WebhookReceiver() as receiver:
        hook, secret = hook_for(db, tenant, receiver.url, ["account.needs_reconnect"])
        mark_needs_reconnect(db.sessions, tenant.account_id, T0)
        mark_needs_reconnect(db.sessions, tenant.account_id, T0)  # a second thread saw it too
        worker(db, T0).run()
    [got] = receiver.received
    sent = json.loads(got.body)
    assert sent["event"] == "account.needs_reconnect"
    assert sent["data"]["socialAccountId"] == tenant.account_id
    assert verify(secret, got.headers["X-Scheduler-Signature"], got.body, int(T0.timestamp()))


def test_a_deleted_webhook_gets_no_new_events_and_its_queued_ones_stop(sqlite, tenant):
    with WebhookReceiver() as receiver:
        hook, _ = hook_for(sqlite, tenant, receiver.url)
        add_due_posts(sqlite, tenant, 1)
        worker(sqlite, T0 + timedelta(seconds=1)).run()
        webhooks.delete_webhook(sqlite.sessions, tenant.company_id, hook.id, T0)
        add_due_posts(sqlite, tenant, 1, run_at=T0 + timedelta(minutes=1))
        worker(sqlite, T0 + timedelta(minutes=2)).run()
        worker(sqlite, T0 + timedelta(minutes=2)).run()
    assert receiver.received == []
    [d] = deliveries(sqlite)
    assert d.status == "failed" and "deleted" in d.error


def test_retention_prunes_finished_deliveries_and_keeps_the_ones_still_trying(sqlite, tenant):
    from app.services.retention import prune

    hook, _ = hook_for(sqlite, tenant, "http://127.0.0.1:9/closed")
    with sqlite.sessions.begin() as session:
        for status in ("delivered", "failed", "retrying", "pending"):
            session.add(WebhookDelivery(webhook_id=hook.id, event="post.published", payload={},
                                        status=status, created_at=T0 - timedelta(days=91)))
        session.add(WebhookDelivery(webhook_id=hook.id, event="post.published", payload={},
                                    status="delivered", created_at=T0 - timedelta(days=1)))
    assert prune(sqlite.sessions, T0, timedelta(days=90)).webhook_deliveries == 2
    assert sorted(d.status for d in deliveries(sqlite)) == ["delivered", "pending", "retrying"]
