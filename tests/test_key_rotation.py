"""Key rotation: tokens sealed under old keys still open while those keys are listed in
SCHEDULER_OLD_SECRET_KEYS, `scheduler secret-key rotate` re-seals them (resumably) under
SCHEDULER_SECRET_KEY, and afterwards the old key can go."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app import crypto
from app.cli import cli
from app.models import PostDetail, SocialAccount, Webhook
from app.services.accounts import add_account
from app.services.keys import rotate
from app.services.webhooks import create_webhook
from worker.cycle import Worker

from conftest import T0, add_due_posts, make_tenant

OLD, OLDER, NEW = crypto.new_key(), crypto.new_key(), crypto.new_key()


def use_keys(monkeypatch, current: str, old: str = "") -> None:
    monkeypatch.setenv("SCHEDULER_SECRET_KEY", current)
    monkeypatch.setenv("SCHEDULER_OLD_SECRET_KEYS", old)


def keyed(db, current: str, old: str = ""):
    """The worker's settings with these keys: it reads them from its Settings, as cron gives them."""
    return replace(db.settings, secret_key=current, old_secret_keys=old)


def sealed_tokens(db) -> dict[str, str]:
    with db.sessions() as session:
        return {r[0]: r[1] for r in session.execute(select(SocialAccount.id, SocialAccount.access_token_encrypted))}


def accounts_under(db, monkeypatch, keys: list[str], per_key: int = 3) -> dict[str, str]:
    """`per_key` accounts sealed under each key in turn; their plain tokens by account id."""
    use_keys(monkeypatch, keys[0])
    tenant = make_tenant(db)  # its own account sealed under the first key too
    plain = {}
    for k, key in enumerate(keys):
        use_keys(monkeypatch, key)
        for i in range(per_key):
            token = f"token-{k}-{i}"
            plain[add_account(db.sessions, tenant.company_id, "sandbox", f"ext-{k}-{i}", token,
                              T0).id] = token
    return plain


def test_rotation_reseals_rows_under_old_keys_and_the_old_keys_can_go(db, monkeypatch):
    plain = accounts_under(db, monkeypatch, [OLDER, OLD, NEW])
    use_keys(monkeypatch, OLD)
    hook, secret = create_webhook(db.sessions, next(iter(_companies(db))), "https://example.com/h",
                                  ["post.published"], T0, allow_private=True)
    use_keys(monkeypatch, NEW, f"{OLD}, {OLDER}")
    before = sealed_tokens(db)

    report = rotate(db.sessions, batch=2)

    # 3 (and the tenant's own account) under OLDER, 3 under OLD, the webhook secret under OLD;
    # 3 already under NEW.
    assert report.resealed == 3 + 3 + 1 + 1 and report.already_current == 3
    assert report.unreadable == []
    after = sealed_tokens(db)
    for account_id, token in plain.items():
        assert crypto.is_current(after[account_id])
        assert (after[account_id] == before[account_id]) == token.startswith("token-2")
    use_keys(monkeypatch, NEW)  # the old keys dropped: every secret still opens
    assert {i: crypto.unseal(after[i]) for i in plain} == plain
    with db.sessions() as session:
        assert crypto.unseal(session.get(Webhook, hook.id).secret_encrypted) == secret
    assert rotate(db.sessions).resealed == 0  # nothing left to do


def _companies(db) -> list[str]:
    with db.sessions() as session:
        return list(session.scalars(select(SocialAccount.company_id).distinct()))


def test_an_interrupted_rotation_resumes_where_it_stopped(sqlite, monkeypatch):
    plain = accounts_under(sqlite, monkeypatch, [OLD], per_key=7)
    use_keys(monkeypatch, NEW, OLD)

    def stop(report):
        raise KeyboardInterrupt  # the operator's Ctrl-C, right after the first batch committed

    with pytest.raises(KeyboardInterrupt):
        rotate(sqlite.sessions, batch=3, after_batch=stop)
    done = [i for i, sealed in sealed_tokens(sqlite).items() if crypto.is_current(sealed)]
    assert len(done) == 3  # the first batch stayed re-sealed

    report = rotate(sqlite.sessions, batch=3)
    assert (report.resealed, report.already_current) == (len(plain) + 1 - 3, 3)
    use_keys(monkeypatch, NEW)
    assert all(crypto.unseal(sealed_tokens(sqlite)[i]) == t for i, t in plain.items())


def test_a_token_no_key_opens_is_reported_and_the_command_exits_4(sqlite, monkeypatch):
    accounts_under(sqlite, monkeypatch, [OLD], per_key=2)
    env = {"DATABASE_URL": sqlite.url, "SCHEDULER_SECRET_KEY": NEW, "SCHEDULER_OLD_SECRET_KEYS": ""}
    result = CliRunner().invoke(cli, ["secret-key", "rotate", "--json"], env=env)
    assert result.exit_code == 4, result.output
    assert "SCHEDULER_OLD_SECRET_KEYS" in result.stderr and "run this again" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    env["SCHEDULER_OLD_SECRET_KEYS"] = OLD  # the missing key listed: the same command finishes
    result = CliRunner().invoke(cli, ["secret-key", "rotate", "--json", "--batch", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert '"resealed": 3' in result.stdout and '"unreadable": []' in result.stdout


def test_secret_key_alone_still_prints_a_new_key():
    result = CliRunner().invoke(cli, ["secret-key"])
    assert result.exit_code == 0 and len(result.stdout.strip()) == 44


def published(db) -> int:
    with db.sessions() as session:
        return len(session.scalars(select(PostDetail.id).where(
            PostDetail.status == "published")).all())


def test_posts_publish_with_the_old_key_listed_and_after_rotation_without_it(db, monkeypatch):
    use_keys(monkeypatch, OLD)
    tenant = make_tenant(db)
    add_due_posts(db, tenant, 3, run_at=T0)
    add_due_posts(db, tenant, 3, run_at=T0 + timedelta(hours=1))

    use_keys(monkeypatch, NEW, OLD)  # the new key in place, the old one still listed
    Worker(keyed(db, NEW, OLD), db.sessions, clock=lambda: T0 + timedelta(seconds=1)).run()
    assert published(db) == 3

    assert rotate(db.sessions).resealed == 1
    use_keys(monkeypatch, NEW)  # the old key removed after the rotation
    Worker(keyed(db, NEW), db.sessions, clock=lambda: T0 + timedelta(hours=1, seconds=1)).run()
    assert published(db) == 6
