"""The `scheduler` command line, driven in-process with click's CliRunner on a SQLite file.

Every failure a user can cause ends as one `error: ...` line on stderr and the exit code
listed in app/errors.py, never a traceback.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.cli import cli
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound, SchemaMissing
from app.migrations import head_revision, revisions_between
from app.models import PostDetail, PostSchedule, PublishAttempt, SocialAccount, WorkerRun
from app.services import media as store

from conftest import T0, Db, Tenant, add_due_posts
from fakes import media as files

VERSIONS = revisions_between(None, head_revision())

UTC = timezone.utc


@pytest.fixture(autouse=True)
def clean_environment_and_logging(monkeypatch):
    """No stray SCHEDULER_* setting from the shell; the CLI's log handler does not outlive the test."""
    for name in list(os.environ):
        if name.startswith("SCHEDULER_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Cli:
    """Runs `scheduler ...` against one SQLite file; `db` opens that file for checks."""

    def __init__(self, tmp_path):
        self.url = f"sqlite:///{tmp_path / 'cli.db'}"
        self.env = {"DATABASE_URL": self.url, "SCHEDULER_WORKER_ID": "cli-test-worker"}
        self._db = None

    def __call__(self, *args: str, env: dict | None = None):
        result = CliRunner().invoke(cli, list(args), env={**self.env, **(env or {})},
                                    prog_name="scheduler")
        # A SystemExit is a handled exit; anything else escaped the error handling.
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"unhandled {result.exception!r}\n{result.output}")
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, env: dict | None = None):
        result = self("--json", *args, env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    @property
    def db(self) -> Db:
        if self._db is None:
            settings = Settings(database_url=self.url, worker_id="test-checker")
            engine = make_engine(settings)
            self._db = Db("sqlite", settings, engine, make_session_factory(engine))
        return self._db

    def close(self):
        if self._db is not None:
            self._db.engine.dispose()


@pytest.fixture
def run(tmp_path):
    runner = Cli(tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def ready(run):
    """A database with the schema, a company and a sandbox account made through the CLI."""
    assert run("db", "init").exit_code == 0
    company = run.json("company", "create", "Acme")
    account = run.json("account", "add", "--company", company["id"], "--platform", "sandbox",
                       "--external-id", "acme-sandbox", "--token", "tok-123", "--name", "Acme box")
    run.tenant = Tenant(company["id"], account["id"], company["api_key"])
    return run


def assert_error(result, exit_code: int, *fragments: str) -> str:
    """Exit code as listed in app/errors.py, exactly one `error: ...` line on stderr."""
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    return lines[0]


def log_events(stderr: str, name: str) -> list[dict]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == name]


def schedule_row(db: Db, schedule_id: int) -> dict:
    with db.sessions() as session:
        s, d = PostSchedule, PostDetail
        row = session.execute(
            select(s.status, s.attempts, s.run_at, s.last_error, s.lock_token, s.deferrals,
                   d.status.label("post_status"), d.error_message, d.platform_post_id,
                   d.content, d.social_account_id, d.group_id, d.timezone)
            .join(d, d.id == s.post_detail_id).where(s.id == schedule_id)).one()
    return row._asdict()


def future(days: int = 30) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


# -- db init ----------------------------------------------------------------------------------

def test_db_init_twice(run):
    first = run("db", "init")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"applied {', '.join(VERSIONS)} on sqlite:///")
    second = run("db", "init")
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("schema already up to date on sqlite:///")
    assert run.json("db", "init") == {"applied": [], "database": run.url}
    assert run.db.scalar("SELECT version_num FROM alembic_version") == VERSIONS[-1]


def test_db_init_json_lists_what_it_applied(run):
    assert VERSIONS[:2] == ["0001_initial", "0002_api"]
    assert run.json("db", "init") == {"applied": VERSIONS, "database": run.url}


@pytest.mark.parametrize("args", [
    ("company", "create", "Acme"),
    ("queue", "stats"),
    ("worker", "run"),
    ("apikey", "list", "--company", "x"),
])
def test_commands_before_db_init_say_to_run_it(run, args):
    assert_error(run(*args), SchemaMissing.exit_code, "schema is missing", "`scheduler db init`")


def test_bad_settings_are_one_line_and_exit_4(run):
    assert_error(run("queue", "stats", env={"DATABASE_URL": "oracle://u@h/db"}), 4,
                 "DATABASE_URL uses 'oracle'")
    assert_error(run("queue", "stats", env={"SCHEDULER_BATCH_SIZE": "0"}), 4,
                 "SCHEDULER_BATCH_SIZE must be greater than 0")
    assert_error(run("worker", "run", env={"SCHEDULER_MAX_ATTEMPTS": "three"}), 4,
                 "SCHEDULER_MAX_ATTEMPTS must be a whole number")
    assert_error(run("worker", "run", "--budget", "0"), 4, "SCHEDULER_RUN_BUDGET")


def test_unreachable_database_is_exit_2(run):
    result = run("queue", "stats", env={"DATABASE_URL": "mysql://root@127.0.0.1:1/nope"})
    assert_error(result, DatabaseUnavailable.exit_code, "cannot reach the database",
                 "127.0.0.1:1")


def test_help_documents_the_exit_codes(run):
    result = run("--help")
    assert result.exit_code == 0
    for line in ("2  the database cannot be reached", "3  the schema is missing",
                 "4  a setting is malformed", "5  not found", "6  invalid input", "7  conflict"):
        assert line in result.stdout
    for command in ("db", "company", "apikey", "account", "post", "worker", "queue"):
        assert command in result.stdout


# -- companies and keys -----------------------------------------------------------------------

def test_company_create_prints_id_and_key(run):
    run("db", "init")
    result = run("company", "create", "Acme Corp")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith("company ") and first.endswith("(Acme Corp)")
    company_id = first.split()[1]
    assert second.startswith("API key (shown once, keep it safe): sk_")
    key = second.rsplit(" ", 1)[1]
    assert run.db.scalar("SELECT name FROM companies WHERE id = :id", id=company_id) == "Acme Corp"
    # only the hash is stored
    assert run.db.scalar("SELECT COUNT(*) FROM api_keys WHERE key_hash = :k", k=key) == 0
    assert run.db.scalar("SELECT COUNT(*) FROM api_keys WHERE company_id = :c", c=company_id) == 1


def test_company_create_with_a_timezone(run):
    run("db", "init")
    assert run.json("company", "create", "Paris", "--timezone", "Europe/Paris")["timezone"] == "Europe/Paris"
    assert_error(run("company", "create", "Nowhere", "--timezone", "Mars/Base"),
                 InvalidInput.exit_code, "unknown time zone 'Mars/Base'")


def test_company_create_json(run):
    run("db", "init")
    data = run.json("company", "create", "  Spaced  ")
    assert set(data) == {"id", "name", "timezone", "api_key"}
    assert data["name"] == "Spaced" and data["timezone"] == "UTC"
    assert data["api_key"].startswith("sk_") and len(data["api_key"]) > 40
    assert len(data["id"]) == 36


def test_company_create_with_an_empty_name_is_invalid(run):
    run("db", "init")
    assert_error(run("company", "create", "   "), InvalidInput.exit_code, "must not be empty")


def test_apikey_create_list_revoke(ready):
    run, company_id = ready, ready.tenant.company_id
    created = run.json("apikey", "create", "--company", company_id)
    assert created["api_key"].startswith(created["prefix"])
    assert created["prefix"].startswith("sk_")

    keys = run.json("apikey", "list", "--company", company_id)
    assert len(keys) == 2
    assert {k["id"] for k in keys} >= {created["id"]}
    assert all(k["revoked_at"] is None for k in keys)
    assert all("api_key" not in k and "key_hash" not in k for k in keys)

    human = run("apikey", "list", "--company", company_id)
    assert human.exit_code == 0
    assert human.stdout.count("active") == 2

    revoked = run("apikey", "revoke", created["id"])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.strip() == f"revoked {created['id']}"
    keys = {k["id"]: k for k in run.json("apikey", "list", "--company", company_id)}
    assert keys[created["id"]]["revoked_at"] is not None
    assert sum(k["revoked_at"] is None for k in keys.values()) == 1
    human = run("apikey", "list", "--company", company_id).stdout
    assert human.count("revoked") == 1 and human.count("active") == 1

    # revoking again keeps the first revocation time
    first_time = keys[created["id"]]["revoked_at"]
    again = run.json("apikey", "revoke", created["id"])
    assert again["revoked_at"] == first_time


def test_apikey_errors(ready):
    run = ready
    assert_error(run("apikey", "revoke", "no-such-key"), NotFound.exit_code,
                 "no API key with id no-such-key")
    assert_error(run("apikey", "create", "--company", "no-such-company"), NotFound.exit_code,
                 "no company with id no-such-company")
    assert_error(run("apikey", "list", "--company", "no-such-company"), NotFound.exit_code,
                 "no company")


# -- accounts ---------------------------------------------------------------------------------

def test_account_add(ready):
    run = ready
    result = run("account", "add", "--company", run.tenant.company_id, "--platform", "x",
                 "--external-id", "123456", "--token", "x-secret-token")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("account ") and "(x 123456)" in result.stdout
    assert "x-secret-token" not in result.output
    with run.db.sessions() as session:
        accounts = session.scalars(select(SocialAccount).order_by(SocialAccount.external_id)).all()
    assert [(a.platform, a.external_id, a.status) for a in accounts] == [
        ("x", "123456", "active"), ("sandbox", "acme-sandbox", "active")]
    assert all("secret" not in a.access_token_encrypted for a in accounts)


def test_account_add_json_and_token_from_the_environment(ready):
    run = ready
    data = run.json("account", "add", "--company", run.tenant.company_id,
                    "--platform", "linkedin", "--external-id", "urn:li:person:abc",
                    env={"SCHEDULER_ACCOUNT_TOKEN": "from-env"})
    assert data["platform"] == "linkedin"
    assert data["external_id"] == "urn:li:person:abc"
    assert data["status"] == "active"
    assert "token" not in json.dumps(data)


def test_account_reconnect(ready):
    run = ready
    with run.db.sessions.begin() as session:
        session.get(SocialAccount, run.tenant.account_id).status = "needs_reconnect"
    result = run("account", "reconnect", run.tenant.account_id,
                 env={"SCHEDULER_ACCOUNT_TOKEN": "fresh-token"})
    assert result.exit_code == 0, result.output
    assert "is active again; 0 waiting post(s) are pending again" in result.stdout
    assert "fresh-token" not in result.output
    with run.db.sessions() as session:
        assert session.get(SocialAccount, run.tenant.account_id).status == "active"
    assert_error(run("account", "reconnect", "no-such-account", "--token", "t"),
                 NotFound.exit_code, "no social account no-such-account")


def test_account_add_errors(ready):
    run = ready
    base = ["account", "add", "--platform", "sandbox", "--token", "t"]
    assert_error(run(*base, "--company", "nope", "--external-id", "e1"), NotFound.exit_code,
                 "no company with id nope")
    assert_error(run(*base, "--company", run.tenant.company_id, "--external-id", "acme-sandbox"),
                 Conflict.exit_code, "already has the sandbox account acme-sandbox")
    bad_platform = run("account", "add", "--company", run.tenant.company_id, "--platform",
                       "myspace", "--external-id", "e", "--token", "t")
    assert bad_platform.exit_code != 0
    assert "myspace" in bad_platform.stderr


# -- posts ------------------------------------------------------------------------------------

def test_post_schedule_in_the_future(ready):
    run = ready
    at = future()
    result = run("post", "schedule", "--account", run.tenant.account_id, "--at", at.isoformat(),
                 "Hello world")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("post ") and f"due {at.isoformat()}" in result.stdout

    [data] = run.json("post", "schedule", "--account", run.tenant.account_id,
                      "--at", at.isoformat(), "Again")
    assert data["account_id"] == run.tenant.account_id
    assert datetime.fromisoformat(data["run_at"]) == at
    row = schedule_row(run.db, data["schedule_id"])
    assert row["status"] == "pending" and row["post_status"] == "pending"
    assert row["attempts"] == 0
    assert row["run_at"] == at
    assert row["content"] == "Again"


def test_post_schedule_with_stored_media_and_a_url(ready, tmp_path):
    run = ready
    media = store.store(run.db.sessions, str(tmp_path), 10 ** 6, run.tenant.company_id,
                        [files.image()], "a.png", T0)
    [data] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at",
                      future().isoformat(), "--media-id", media.id, "--media",
                      "https://example.com/b.png", "With media")
    rows = run.db.rows("SELECT position, media_id, url FROM post_media ORDER BY position")
    assert [tuple(r.values()) for r in rows] == [(0, media.id, None),
                                                 (1, None, "https://example.com/b.png")]
    other = run("post", "schedule", "--account", run.tenant.account_id, "--at",
                future().isoformat(), "--media-id", "6c5f5f4e-0000-4000-8000-000000000000", "x")
    assert_error(other, NotFound.exit_code, "no media 6c5f5f4e-0000-4000-8000-000000000000")


def test_post_schedule_local_time_with_a_timezone(ready):
    run = ready
    [data] = run.json("post", "schedule", "--account", run.tenant.account_id,
                      "--at", "2099-12-01T09:00:00", "--timezone", "Europe/Paris", "Winter post")
    assert datetime.fromisoformat(data["run_at"]) == datetime(2099, 12, 1, 8, 0, tzinfo=UTC)
    row = schedule_row(run.db, data["schedule_id"])
    assert row["timezone"] == "Europe/Paris"
    assert row["run_at"] == datetime(2099, 12, 1, 8, 0, tzinfo=UTC)


def test_post_schedule_relative_times(ready):
    run = ready
    before = datetime.now(UTC)
    [data] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", "+5m", "Soon")
    after = datetime.now(UTC)
    run_at = datetime.fromisoformat(data["run_at"])
    assert before + timedelta(minutes=5) <= run_at <= after + timedelta(minutes=5)


def test_post_schedule_a_thread_with_a_first_comment(ready):
    run = ready
    [data] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", "+5m",
                      "--part", "Two", "--part", "Three", "--first-comment", "Four", "One")
    with run.db.sessions() as session:
        post = session.get(PostDetail, data["id"])
        assert (post.content, post.parts, post.first_comment) == ("One", ["Two", "Three"], "Four")
    assert_error(run("post", "schedule", "--account", run.tenant.account_id, "--at", "+5m",
                     "--part", " ", "One"), InvalidInput.exit_code, "parts[0] must not be empty")


def test_post_schedule_on_several_accounts_is_one_group(ready):
    run = ready
    other = run.json("account", "add", "--company", run.tenant.company_id, "--platform", "sandbox",
                     "--external-id", "second", "--token", "t2")
    rows = run.json("post", "schedule", "--account", run.tenant.account_id, "--account", other["id"],
                    "--at", future().isoformat(), "Both")
    assert [r["account_id"] for r in rows] == [run.tenant.account_id, other["id"]]
    groups = {schedule_row(run.db, r["schedule_id"])["group_id"] for r in rows}
    assert len(groups) == 1


def test_post_create_without_at_is_a_draft_then_queued(ready):
    run = ready
    [data] = run.json("post", "create", "--account", run.tenant.account_id, "A draft")
    assert (data["status"], data["schedule_id"], data["run_at"]) == ("draft", None, None)
    result = run("post", "create", "--account", run.tenant.account_id, "Another")
    assert result.exit_code == 0 and "saved as a draft" in result.stdout, result.output
    assert run.db.scalar("SELECT COUNT(*) FROM post_schedule") == 0
    listed = run.json("post", "list", "--company", run.tenant.company_id, "--status", "draft")
    assert len(listed["items"]) == 2
    assert_error(run("post", "queue", data["id"], "--at", "2020-01-01T00:00:00Z"), 6,
                 "must be in the future")
    queued = run.json("post", "queue", data["id"], "--at", "2099-12-01T09:00:00",
                      "--timezone", "Europe/Paris")
    assert queued["status"] == "pending"
    assert datetime.fromisoformat(queued["run_at"]) == datetime(2099, 12, 1, 8, 0, tzinfo=UTC)
    assert schedule_row(run.db, queued["schedule_id"])["status"] == "pending"
    assert_error(run("post", "queue", data["id"], "--at", "best"), 7, "not a draft")
    assert_error(run("post", "create", "--account", run.tenant.account_id, "--timezone", "UTC",
                     "x"), 6, "give both")


@pytest.mark.parametrize("at,tz,fragments", [
    ("tomorrow", None, ("'tomorrow' is not an ISO 8601 date-time",)),
    ("2020-01-01T00:00Z", None, ("must be in the future", "2020-01-01T00:00:00+00:00")),
    ("2020-01-01T09:00:00", "Europe/Paris", ("must be in the future",)),
    ("+-5m", None, ("use +90s, +5m or +2h",)),
    ("2026-12-01T09:00:00", "Mars/Olympus", ("unknown time zone 'Mars/Olympus'",)),
    ("2099-03-29T02:30:00", "Europe/Paris", ("does not exist in Europe/Paris",)),
    ("2099-10-25T02:30:00", "Europe/Paris", ("happens twice in Europe/Paris",)),
    ("+5x", None, ("use +90s, +5m or +2h",)),
    ("+", None, ("use +90s, +5m or +2h",)),
    ("+99999999h", None, ("+99999999h",)),  # beyond year 9999
])
def test_post_schedule_with_a_bad_at(ready, at, tz, fragments):
    run = ready
    args = ["post", "schedule", "--account", run.tenant.account_id, "--at", at]
    if tz:
        args += ["--timezone", tz]
    assert_error(run(*args, "Text"), InvalidInput.exit_code, *fragments)
    assert run.db.scalar("SELECT COUNT(*) FROM post_schedule") == 0


def test_post_schedule_on_an_unknown_account(ready):
    run = ready
    assert_error(run("post", "schedule", "--account", "no-such-account", "--at", "+1h", "Text"),
                 NotFound.exit_code, "no social account no-such-account")
    assert run.db.scalar("SELECT COUNT(*) FROM post_details") == 0


def test_post_schedule_on_another_companys_account(ready):
    run = ready
    other = run.json("company", "create", "Other")
    theirs = run.json("account", "add", "--company", other["id"], "--platform", "sandbox",
                      "--external-id", "theirs", "--token", "t")
    result = run("post", "schedule", "--account", run.tenant.account_id, "--account", theirs["id"],
                 "--at", "+1h", "Mixed")
    assert_error(result, NotFound.exit_code, f"no social account {theirs['id']} in this company")
    assert run.db.scalar("SELECT COUNT(*) FROM post_details") == 0


def test_post_schedule_with_empty_text(ready):
    assert_error(ready("post", "schedule", "--account", ready.tenant.account_id, "--at", "+1h",
                       "  "), InvalidInput.exit_code, "content must not be empty")


# -- worker and queue -------------------------------------------------------------------------

def test_worker_run_publishes_a_due_sandbox_post(ready):
    run = ready
    [post] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", "now", "Go")
    far = run.json("post", "schedule", "--account", run.tenant.account_id,
                   "--at", future().isoformat(), "Later")[0]

    result = run("worker", "run")
    assert result.exit_code == 0, result.output
    [summary] = log_events(result.stderr, "worker_run")
    assert summary["worker_id"] == "cli-test-worker"
    assert (summary["claimed"], summary["published"], summary["failed"], summary["retried"]) == (
        1, 1, 0, 0)
    [published] = log_events(result.stderr, "post")
    assert published["outcome"] == "published"
    assert published["schedule_id"] == post["schedule_id"]

    row = schedule_row(run.db, post["schedule_id"])
    assert row["status"] == "done" and row["post_status"] == "published"
    assert row["platform_post_id"].startswith("sandbox-")
    assert row["attempts"] == 1
    assert schedule_row(run.db, far["schedule_id"])["status"] == "pending"
    with run.db.sessions() as session:
        [attempt] = session.scalars(select(PublishAttempt)).all()
        [worker_run] = session.scalars(select(WorkerRun)).all()
    assert attempt.outcome == "published"
    assert (worker_run.claimed, worker_run.published) == (1, 1)
    assert worker_run.finished_at is not None


def test_worker_run_json_prints_the_summary(ready):
    run = ready
    add_due_posts(run.db, run.tenant, 3, run_at=datetime.now(UTC) - timedelta(minutes=1))
    summary = run.json("worker", "run", "--budget", "20")
    assert summary["claimed"] == 3 and summary["published"] == 3
    assert summary["worker_id"] == "cli-test-worker"
    assert run.json("queue", "stats")["done"] == 3


def test_queue_stats_counts(ready):
    run = ready
    assert run.json("queue", "stats") == {"pending": 0, "processing": 0, "done": 0, "failed": 0,
                                          "cancelled": 0, "missed": 0, "waiting": 0}
    due = datetime.now(UTC) - timedelta(minutes=1)
    add_due_posts(run.db, run.tenant, 2, run_at=due)
    add_due_posts(run.db, run.tenant, 1, run_at=due, content="#sandbox-fail")
    add_due_posts(run.db, run.tenant, 4, run_at=future())
    assert run.json("queue", "stats")["pending"] == 7
    assert run("worker", "run").exit_code == 0
    stats = run.json("queue", "stats")
    assert stats == {"pending": 4, "processing": 0, "done": 2, "failed": 1, "cancelled": 0,
                     "missed": 0, "waiting": 0}
    human = run("queue", "stats")
    assert human.exit_code == 0
    lines = dict(line.split() for line in human.stdout.splitlines())
    assert lines == {"pending": "4", "processing": "0", "done": "2", "failed": "1",
                     "cancelled": "0", "missed": "0", "waiting": "0"}


def test_queue_retry_of_a_failed_post(ready):
    run = ready
    [failing] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", "now",
                         "Bad #sandbox-fail")
    sid = failing["schedule_id"]
    assert run("worker", "run").exit_code == 0
    row = schedule_row(run.db, sid)
    assert (row["status"], row["post_status"], row["attempts"]) == ("failed", "failed", 1)
    assert "simulated rejection" in row["error_message"]

    before = datetime.now(UTC)
    result = run("queue", "retry", str(sid))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"schedule {sid} is pending again, due now"
    row = schedule_row(run.db, sid)
    assert (row["status"], row["post_status"], row["attempts"]) == ("pending", "pending", 0)
    assert row["last_error"] is None and row["error_message"] is None and row["lock_token"] is None
    assert before - timedelta(seconds=1) <= row["run_at"] <= datetime.now(UTC)

    # it is due again: the next run claims it (and the sandbox rejects it again)
    summary = run.json("worker", "run")
    assert (summary["claimed"], summary["failed"]) == (1, 1)
    assert run.json("queue", "retry", str(sid)) == {"schedule_id": sid, "post_id": failing["id"],
                                                    "status": "pending"}


def test_queue_retry_of_a_post_that_is_not_failed(ready):
    run = ready
    [pending] = run.json("post", "schedule", "--account", run.tenant.account_id,
                         "--at", future().isoformat(), "Fine")
    sid = pending["schedule_id"]
    assert_error(run("queue", "retry", str(sid)), Conflict.exit_code,
                 f"schedule {sid} is", "not a failed or missed post")
    assert schedule_row(run.db, sid)["run_at"] == datetime.fromisoformat(pending["run_at"])

    [done] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", "now", "Ok")
    run("worker", "run")
    assert_error(run("queue", "retry", str(done["schedule_id"])), Conflict.exit_code,
                 "not a failed or missed post")
    assert schedule_row(run.db, done["schedule_id"])["status"] == "done"


def test_queue_retry_of_an_unknown_id(ready):
    assert_error(ready("queue", "retry", "987654"), NotFound.exit_code, "no schedule 987654")


def test_queue_retry_of_something_that_is_no_post(ready):
    assert_error(ready("queue", "retry", "abc"), NotFound.exit_code, "no post abc",
                 "scheduler post list")


# -- conventions: --json anywhere, errors as JSON, --version, usage errors ----------------------

@pytest.mark.parametrize("args", [
    ("--json", "queue", "stats"), ("queue", "--json", "stats"), ("queue", "stats", "--json"),
])
def test_json_is_accepted_anywhere_on_the_line(ready, args):
    result = ready(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pending"] == 0


def test_json_after_the_arguments_of_a_command(ready):
    data = json.loads(ready("company", "create", "Late flag", "--json").stdout)
    assert data["name"] == "Late flag" and data["api_key"].startswith("sk_")
    [row] = json.loads(ready("post", "schedule", "--account", ready.tenant.account_id, "--at", "+1h",
                             "Text", "--json").stdout)
    assert row["account_id"] == ready.tenant.account_id
    # after `--` it is text, not the flag
    result = ready("post", "schedule", "--account", ready.tenant.account_id, "--at", "+1h", "--",
                   "--json")
    assert result.exit_code == 0 and result.stdout.startswith("post ")


def json_error(result, exit_code: int, code: str, *fragments: str) -> dict:
    """Under --json an error is one JSON object on stderr, and nothing on stdout."""
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    error = json.loads(line)["error"]
    assert (error["code"], error["exitCode"]) == (code, exit_code)
    for fragment in fragments:
        assert fragment in error["message"]
    return error


def command_paths(group=cli, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


def test_every_command_accepts_json_after_its_name(run):
    paths = list(command_paths())
    assert ("post", "list") in paths and ("queue", "retry") in paths and len(paths) > 15
    for path in paths:
        result = run(*path, "--json", "--help")
        assert result.exit_code == 0, (path, result.output)


def test_secret_key_under_json(run):
    key = json.loads(run("secret-key", "--json").stdout)["secret_key"]
    assert len(key) == 44 and key != json.loads(run("--json", "secret-key").stdout)["secret_key"]
    assert len(run("secret-key").stdout.strip()) == 44


def test_errors_under_json_are_json_on_stderr(ready):
    json_error(ready("queue", "retry", "987654", "--json"), NotFound.exit_code, "not_found",
               "no schedule 987654")
    json_error(ready("--json", "post", "schedule", "--account", ready.tenant.account_id,
                     "--at", "2020-01-01T00:00Z", "Late"), InvalidInput.exit_code,
               "validation_failed", "must be in the future")
    json_error(ready("queue", "stats", "--json", env={"SCHEDULER_BATCH_SIZE": "0"}), 4,
               "invalid_setting", "SCHEDULER_BATCH_SIZE")


def test_version(run):
    from app.cli import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"scheduler {version()}\n"
    assert version() not in ("", "unknown")  # the test venv installs the project
    assert json.loads(run("--version", "--json").stdout) == {"version": version()}


@pytest.mark.parametrize("args,fragment", [
    (("queue", "stats", "--no-such-option"), "No such option '--no-such-option'"),
    (("post", "schedule", "--at", "now", "Text"), "Missing option '--account'"),
    (("no-such-command",), "No such command 'no-such-command'"),
    (("post", "list", "--company", "x", "--limit", "0"), "--limit"),
])
def test_usage_errors_have_their_own_exit_code(run, args, fragment):
    from app.cli import EX_USAGE

    result = run(*args)
    line = assert_error(result, EX_USAGE, fragment, "--help")
    assert EX_USAGE not in (0, 1, 2, 3, 4, 5, 6, 7)
    assert line.count("\n") == 0
    json_error(run(*args, "--json"), EX_USAGE, "usage", fragment)


def test_usage_error_of_the_launcher_command(tmp_path):
    from app.cli import EX_USAGE, worker_run

    result = CliRunner().invoke(worker_run, ["--budget"], prog_name="worker_trigger.py")
    assert result.exit_code == EX_USAGE
    assert "requires an argument" in result.stderr


# -- company list, post list, post cancel, queue retry by post id -----------------------------

def test_company_list(ready):
    run = ready
    paris = run.json("company", "create", "Paris", "--timezone", "Europe/Paris")
    rows = run.json("company", "list")
    assert [(r["id"], r["name"], r["timezone"]) for r in rows] == [
        (run.tenant.company_id, "Acme", "UTC"), (paris["id"], "Paris", "Europe/Paris")]
    human = run("company", "list").stdout.splitlines()
    assert human[1].split() == [paris["id"], "Europe/Paris", "Paris"]


def schedule(run, at: str, text: str, *extra: str) -> dict:
    [row] = run.json("post", "schedule", "--account", run.tenant.account_id, "--at", at, *extra,
                     text)
    return row


def test_post_list_filters_and_pages_like_the_api(ready):
    run = ready
    base = future()
    ids = [schedule(run, (base + timedelta(hours=i)).isoformat(), f"Post {i}")["id"]
           for i in range(3)]
    failing = schedule(run, "now", "Bad #sandbox-fail")
    run("worker", "run")
    company = ["--company", run.tenant.company_id]

    everything = run.json("post", "list", *company)
    assert [p["id"] for p in everything["items"]] == [failing["id"], *ids]
    assert everything["next_cursor"] is None
    assert run.json("post", "list", *company, "--status", "failed")["items"][0]["errorMessage"]
    assert [p["id"] for p in run.json("post", "list", *company, "--status", "pending")["items"]] == ids
    window = run.json("post", "list", *company, "--from", (base + timedelta(hours=1)).isoformat(),
                      "--to", (base + timedelta(hours=2)).isoformat())
    assert [p["id"] for p in window["items"]] == [ids[1]]
    first = run.json("post", "list", *company, "--status", "pending", "--limit", "2")
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = run.json("post", "list", *company, "--status", "pending", "--cursor",
                      first["next_cursor"])
    assert [p["id"] for p in second["items"]] == ids[2:] and second["next_cursor"] is None
    assert run.json("post", "list", *company, "--account", run.tenant.account_id)["items"]

    human = run("post", "list", *company, "--status", "pending", "--limit", "2").stdout
    assert ids[0] in human and f"more: --cursor {first['next_cursor']}" in human
    assert_error(run("post", "list", "--company", "00000000-0000-0000-0000-000000000000"),
                 NotFound.exit_code, "no company")
    assert_error(run("post", "list", *company, "--cursor", "garbage"), InvalidInput.exit_code,
                 "cursor")


def test_post_cancel(ready):
    run = ready
    pending = schedule(run, "+1h", "Cancel me")
    result = run("post", "cancel", pending["id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"post {pending['id']} is cancelled"
    row = schedule_row(run.db, pending["schedule_id"])
    assert (row["status"], row["post_status"]) == ("cancelled", "cancelled")
    assert_error(run("post", "cancel", pending["id"]), Conflict.exit_code, "only a pending")

    done = schedule(run, "now", "Gone already")
    run("worker", "run")
    assert_error(run("post", "cancel", done["id"]), Conflict.exit_code, "already published")
    assert schedule_row(run.db, done["schedule_id"])["status"] == "done"
    assert_error(run("post", "cancel", "00000000-0000-0000-0000-000000000000"),
                 NotFound.exit_code, "no post")
    assert run.json("post", "cancel", schedule(run, "+2h", "Again")["id"])["status"] == "cancelled"


def test_queue_retry_by_post_id(ready):
    run = ready
    failing = schedule(run, "now", "Bad #sandbox-fail")
    run("worker", "run")
    result = run("queue", "retry", failing["id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"post {failing['id']} is pending again, due now"
    row = schedule_row(run.db, failing["schedule_id"])
    assert (row["status"], row["post_status"], row["attempts"]) == ("pending", "pending", 0)
    assert_error(run("queue", "retry", failing["id"]), Conflict.exit_code,
                 "not a failed or missed post")


# -- a time without a zone is read in the company's zone --------------------------------------

def test_local_time_is_read_in_the_companys_zone_across_a_dst_change(run):
    assert run("db", "init").exit_code == 0
    company = run.json("company", "create", "Paris", "--timezone", "Europe/Paris")
    account = run.json("account", "add", "--company", company["id"], "--platform", "sandbox",
                       "--external-id", "paris", "--token", "t")
    run.tenant = Tenant(company["id"], account["id"], company["api_key"])
    # Europe/Paris moves from +01:00 to +02:00 on 2099-03-29 at 02:00
    before = schedule(run, "2099-03-28T09:00:00", "Winter")
    after = schedule(run, "2099-03-30T09:00:00", "Summer")
    assert datetime.fromisoformat(before["run_at"]) == datetime(2099, 3, 28, 8, tzinfo=UTC)
    assert datetime.fromisoformat(after["run_at"]) == datetime(2099, 3, 30, 7, tzinfo=UTC)
    assert schedule_row(run.db, after["schedule_id"])["timezone"] == "Europe/Paris"
    # an offset still decides by itself; the gap and the overlap are refused as before
    offset = schedule(run, "2099-03-30T09:00:00+00:00", "UTC nine")
    assert datetime.fromisoformat(offset["run_at"]) == datetime(2099, 3, 30, 9, tzinfo=UTC)
    assert schedule_row(run.db, offset["schedule_id"])["timezone"] is None
    for at, fragment in [("2099-03-29T02:30:00", "does not exist in Europe/Paris"),
                         ("2099-10-25T02:30:00", "happens twice in Europe/Paris")]:
        assert_error(run("post", "schedule", "--account", account["id"], "--at", at, "X"),
                     InvalidInput.exit_code, fragment)
    # --timezone still wins over the company's zone
    tokyo = schedule(run, "2099-03-30T09:00:00", "Tokyo", "--timezone", "Asia/Tokyo")
    assert datetime.fromisoformat(tokyo["run_at"]) == datetime(2099, 3, 30, 0, tzinfo=UTC)
