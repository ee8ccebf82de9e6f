"""Evergreen rotation: the priority order on a planted set, the minimum gap between the same
text on an account, bad requests, the weekly rule as an evergreen job, and two rotations at
once in two processes (MariaDB and PostgreSQL) never scheduling one post twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from app.models import Job, PostDetail, PostSchedule
from app.services import evergreen
from app.services.accounts import add_account
from worker.cycle import Worker

from conftest import T0

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # a Tuesday
ROOT = Path(__file__).resolve().parent.parent


def plant_source(db, tenant, content: str, published_days_ago: list[int] | None,
                 account_id: str | None = None, created_days_ago: int = 200) -> str:
    """An evergreen post; published at each of `published_days_ago` (the first by the post
    itself, the others by earlier rotations' copies), or never (None: it failed)."""
    account_id = account_id or tenant.account_id
    times = [NOW - timedelta(days=d) for d in (published_days_ago or [])]
    created = NOW - timedelta(days=created_days_ago)
    source = str(uuid.uuid4())
    rows = [dict(id=source, company_id=tenant.company_id, social_account_id=account_id,
                 group_id=source, content=content, media_urls=[], evergreen=True,
                 status="published" if times else "failed",
                 published_at=times[0] if times else None, created_at=created, updated_at=created)]
    rows += [dict(id=str(uuid.uuid4()), company_id=tenant.company_id, social_account_id=account_id,
                  group_id=source, content=content, media_urls=[], evergreen=False,
                  evergreen_source_id=source, status="published", published_at=t,
                  created_at=created, updated_at=created) for t in times[1:]]
    schedules = [dict(post_detail_id=r["id"], run_at=r["published_at"] or created,
                      status="done" if r["status"] == "published" else "failed", attempts=1,
                      max_attempts=3, deferrals=0, created_at=created, updated_at=created)
                 for r in rows]
    with db.sessions.begin() as session:
        session.execute(insert(PostDetail), rows)
        session.execute(insert(PostSchedule), schedules)
    return source


def copies(db) -> list[tuple[str, datetime]]:
    """(source, run_at) of every copy a rotation made (from NOW on), by run_at."""
    with db.sessions() as session:
        return [tuple(r) for r in session.execute(
            select(PostDetail.evergreen_source_id, PostSchedule.run_at)
            .join(PostSchedule, PostSchedule.post_detail_id == PostDetail.id)
            .where(PostDetail.evergreen_source_id.is_not(None), PostDetail.created_at >= NOW)
            .order_by(PostSchedule.run_at))]


# -- the order --------------------------------------------------------------------------------

def test_priority_rises_with_time_and_falls_with_diminishing_returns():
    assert evergreen.priority(NOW, NOW - timedelta(days=60), 1) > \
        evergreen.priority(NOW, NOW - timedelta(days=30), 1)
    drops = [evergreen.priority(NOW, NOW - timedelta(days=60), n) -
             evergreen.priority(NOW, NOW - timedelta(days=60), n + 1) for n in range(1, 6)]
    assert all(d > 0 for d in drops) and drops == sorted(drops, reverse=True)


def test_the_order_on_a_planted_set(db, tenant):
    a = plant_source(db, tenant, "A: 60 days, once", [60])
    b = plant_source(db, tenant, "B: 60 days, 4 times", [60, 120, 150, 180])
    c = plant_source(db, tenant, "C: 10 days, once", [10])
    d = plant_source(db, tenant, "D: 90 days, 10 times", [90 + i for i in range(10)])
    e = plant_source(db, tenant, "E: never published, written 30 days ago", None, created_days_ago=30)
    # 60/(1+ln 2) = 35.4, 30/(1+ln 1) = 30, 90/(1+ln 11) = 26.1, 60/(1+ln 5) = 23.0, 10/(1+ln 2) = 5.9
    with db.sessions() as session:
        ranked = [c_.source.id for c_ in evergreen.candidates(session, tenant.company_id, NOW)]
    assert ranked == [a, e, d, b, c]
    result = evergreen.rotate(db.sessions, tenant.company_id, 3, NOW)
    assert [p.evergreen_source_id for p in result.scheduled] == [a, e, d]
    assert {s for s, _ in copies(db)} == {a, e, d} and result.skipped == []
    # The next rotation passes over the three already queued; C went out 10 days ago, inside
    # the 30-day gap for the whole window.
    again = evergreen.rotate(db.sessions, tenant.company_id, 3, NOW)
    assert [p.evergreen_source_id for p in again.scheduled] == [b]
    assert [s for s, _ in again.skipped] == [c]


def test_a_rotation_of_five_over_a_week_takes_distinct_best_free_times(db, tenant):
    sources = [plant_source(db, tenant, f"Evergreen tip {i}", [40 + i]) for i in range(5)]
    result = evergreen.rotate(db.sessions, tenant.company_id, 5, NOW)
    times = [t for _, t in copies(db)]
    assert {p.evergreen_source_id for p in result.scheduled} == set(sources)
    assert len(set(times)) == 5 and all(NOW < t <= NOW + timedelta(days=7) for t in times)
    # The sandbox account has no history: the priors' best window (Tuesday to Thursday, 9-12).
    assert all(t.weekday() in (1, 2, 3) and 9 <= t.hour < 12 for t in times)


# -- the gap ----------------------------------------------------------------------------------

def test_the_same_text_is_never_within_the_minimum_gap(db, tenant):
    recent = plant_source(db, tenant, "Our spring sale", [10])
    result = evergreen.rotate(db.sessions, tenant.company_id, 1, NOW, min_gap_days=30)
    assert result.scheduled == [] and [s for s, _ in result.skipped] == [recent]
    later = evergreen.rotate(db.sessions, tenant.company_id, 1, NOW,
                             start=NOW + timedelta(days=18), end=NOW + timedelta(days=25),
                             min_gap_days=30)
    (copy,) = later.scheduled
    assert copy.schedule.run_at >= NOW - timedelta(days=10) + timedelta(days=30)


def test_two_sources_with_one_text_on_one_account_are_a_gap_apart(db, tenant):
    first = plant_source(db, tenant, "Same words", [100])
    second = plant_source(db, tenant, "Same words", [95])
    other = add_account(db.sessions, tenant.company_id, "sandbox", "ext-other", "tok", T0).id
    third = plant_source(db, tenant, "Same words", [90], account_id=other)
    result = evergreen.rotate(db.sessions, tenant.company_id, 3, NOW, min_gap_days=30)
    assert {p.evergreen_source_id for p in result.scheduled} == {first, third}
    assert [s for s, _ in result.skipped] == [second]


# -- the HTTP API -----------------------------------------------------------------------------

def test_flag_on_create_and_by_patch_and_rotate_over_http(sqlite, tenant, api):
    created = api.post("/schedule-post", json={
        "socialAccountId": tenant.account_id, "content": "Evergreen from the start",
        "scheduledAt": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(),
        "evergreen": True}).get_json()["posts"][0]
    assert created["evergreen"] is True and created["evergreenSourceId"] is None
    published = plant_source(sqlite, tenant, "Flag me later", [40])
    with sqlite.sessions.begin() as session:
        session.get(PostDetail, published).evergreen = False
    patched = api.patch(f"/scheduled-posts/{published}", json={"evergreen": True})
    assert patched.status_code == 200 and patched.get_json()["evergreen"] is True
    answer = api.post("/evergreen/rotate", json={"count": 5})
    assert answer.status_code == 200, answer.get_json()
    (copy,) = answer.get_json()["scheduled"]  # the other one is still pending: already queued
    assert copy["evergreenSourceId"] == published and copy["content"] == "Flag me later"
    assert copy["evergreen"] is False


@pytest.mark.parametrize("body, field", [
    ({"count": 0}, "count"), ({"count": 10000}, "count"), ({}, "count"),
    ({"count": 1, "to": "2030-01-09T00:00"}, "to"), ({"count": 1.5}, "count"),
    ({"count": 1, "accountIds": []}, "accountIds"), ({"count": 1, "accountIds": ["x"]}, "accountIds[0]"),
])
def test_bad_rotations_are_422_naming_the_field(sqlite, tenant, api, body, field):
    answer = api.post("/evergreen/rotate", json=body)
    assert answer.status_code == 422 and field in answer.get_json()["error"]["fields"]


def test_an_empty_or_past_window_schedules_nothing_and_a_long_one_is_cut(sqlite, tenant):
    source = plant_source(sqlite, tenant, "Window tip", [60])
    for start, end in ((NOW + timedelta(days=3), NOW + timedelta(days=2)),
                       (NOW - timedelta(days=9), NOW - timedelta(days=2))):
        result = evergreen.rotate(sqlite.sessions, tenant.company_id, 1, NOW, start=start, end=end)
        assert result.scheduled == [] and [s for s, _ in result.skipped] == [source]
    far = evergreen.rotate(sqlite.sessions, tenant.company_id, 1, NOW,
                           start=NOW + timedelta(days=85), end=NOW + timedelta(days=400))
    assert far.scheduled[0].schedule.run_at <= NOW + timedelta(days=85) + evergreen.MAX_WINDOW


def test_another_companys_account_is_404(sqlite, tenant, api):
    from conftest import make_tenant

    other = make_tenant(sqlite, name="Other")
    assert api.post("/evergreen/rotate", json={"count": 1, "accountIds": [other.account_id]}
                    ).status_code == 404
    assert api.post("/evergreen/rules", json={"accountIds": [other.account_id], "postsPerWeek": 3}
                    ).status_code == 404


# -- the weekly rule, as a job ----------------------------------------------------------------

def test_a_rule_runs_once_a_week_as_an_evergreen_job(db, tenant, api):
    for i in range(4):
        plant_source(db, tenant, f"Rule tip {i}", [50 + i])
    rule = api.post("/evergreen/rules", json={"accountIds": [tenant.account_id], "postsPerWeek": 2})
    assert rule.status_code == 201 and rule.get_json()["postsPerWeek"] == 2
    assert [r["id"] for r in api.get("/evergreen/rules").get_json()["items"]] == [rule.get_json()["id"]]
    settings = replace(db.settings, evergreen_min_gap=30)
    Worker(settings, db.sessions, clock=lambda: NOW).run()
    Worker(settings, db.sessions, clock=lambda: NOW + timedelta(hours=1)).run()  # same week
    with db.sessions() as session:
        jobs = list(session.scalars(select(Job).where(Job.kind == "evergreen")))
    assert [(j.status, j.dedupe_key) for j in jobs] == [
        ("done", f"evergreen:{rule.get_json()['id']}:2026-W49")]
    assert len(copies(db)) == 2
    Worker(settings, db.sessions, clock=lambda: NOW + timedelta(days=7)).run()  # next week
    assert len(copies(db)) == 4
    assert api.delete(f"/evergreen/rules/{rule.get_json()['id']}").status_code == 200
    assert api.get("/evergreen/rules").get_json()["items"] == []


# -- two rotations at once, in two processes --------------------------------------------------

ROTATE_SCRIPT = """
import json, sys, time
from datetime import datetime
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.services import evergreen
url, company, now = sys.argv[1], sys.argv[2], sys.argv[3]
sessions = make_session_factory(make_engine(Settings(database_url=url)))
with sessions() as session:
    session.connection()  # connected and imported: ready
print("ready", flush=True)
sys.stdin.readline()  # the go, sent to both at once
began = time.time()
result = evergreen.rotate(sessions, company, 5, datetime.fromisoformat(now))
print(json.dumps({"began": began, "ended": time.time(),
                  "sources": [p.evergreen_source_id for p in result.scheduled]}))
"""


def test_two_rotations_at_once_never_schedule_a_post_twice(server_db, tenant):
    sources = {plant_source(server_db, tenant, f"Race tip {i}", [30 + i]) for i in range(8)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", ROTATE_SCRIPT, server_db.url, tenant.company_id,
                              NOW.isoformat()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
            for _ in range(2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready", run.stderr.read()
    for run in runs:
        run.stdin.write("go\n")
        run.stdin.flush()
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    first, second = sorted(outputs, key=lambda o: o["ended"])
    assert second["began"] < first["ended"], "the two rotations did not overlap"
    scheduled = first["sources"] + second["sources"]
    assert len(scheduled) == len(set(scheduled)) == 8 and set(scheduled) == sources
    assert sorted(len(o["sources"]) for o in outputs) == [3, 5]
    assert len(copies(server_db)) == 8
