"""Social access tokens are sealed at rest: no plaintext token in any table, response or log
line, through connecting accounts, listing them, scheduling and publishing."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import inspect

from app import crypto
from worker.cycle import Worker

TOKENS = {"x": "x-oauth2-TOKEN-0001", "linkedin": "AQV-linkedin-TOKEN-0002",
          "sandbox": "sandbox-TOKEN-0003"}


def everything_in(db) -> str:
    """Every row of every table as text."""
    dump = []
    for table in inspect(db.engine).get_table_names():
        dump += [repr(dict(row)) for row in db.rows(f"SELECT * FROM {table}")]
    return "\n".join(dump)


def test_no_plaintext_token_in_the_database_responses_or_logs(db, tenant, api, caplog):
    caplog.set_level(logging.DEBUG)
    responses = []
    ids = {}
    for platform, token in TOKENS.items():
        response = api.post("/social-accounts", json={
            "platform": platform, "externalId": f"{platform}-1", "accessToken": token})
        assert response.status_code == 201
        responses.append(response)
        ids[platform] = response.get_json()["id"]
    when = datetime.now(timezone.utc) + timedelta(minutes=5)
    responses.append(api.post("/schedule-post", json={
        "socialAccountIds": [ids["sandbox"]], "content": "hello", "scheduledAt": when.isoformat()}))
    Worker(db.settings, db.sessions, clock=lambda: when + timedelta(seconds=1)).run()
    responses += [api.get("/social-accounts"), api.get("/clients"), api.get("/scheduled-posts")]
    post_id = responses[3].get_json()["posts"][0]["id"]
    responses.append(api.get(f"/scheduled-posts/{post_id}"))
    assert responses[-1].get_json()["status"] == "published"  # the token was used, unsealed

    stored = everything_in(db)
    logged = "\n".join(caplog.messages) + "\n".join(repr(getattr(r, "fields", "")) for r in caplog.records)
    answered = "\n".join(r.get_data(as_text=True) for r in responses)
    for token in TOKENS.values():
        assert token not in stored
        assert token not in answered
        assert token not in logged
    sealed = db.scalar("SELECT access_token_encrypted FROM social_accounts WHERE id = :i", i=ids["x"])
    assert crypto.unseal(sealed) == TOKENS["x"]  # sealed, not lost
