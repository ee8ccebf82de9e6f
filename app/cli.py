"""The `scheduler` command line. Human-readable output by default, `--json` for scripts.

Every command reads the same environment variables as the app and the worker, and turns a
SchedulerError into one line on stderr and the exit code listed in README.md.
"""
from __future__ import annotations

import functools
import json
import sys
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from app import crypto, logs
from app.config import Settings
from app.db import (
    check_connection, check_schema, describe, explain_connect_error, make_engine,
    make_session_factory,
)
from app.errors import ConfigError, DatabaseUnavailable, InvalidInput, NotFound, SchedulerError
from app.services.limits import LIMITS
from app.statuses import Platform, PostStatus, QueueStatus
from app.timeutil import parse_instant, utcnow

EX_USAGE = 64  # sysexits.h: the command line itself is wrong
EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  2  the database cannot be reached, the login failed, or the server is too old
  3  the schema is missing or out of date (run `scheduler db init`), or newer than this code
  4  a setting is malformed or out of range (the message names it)
  5  not found;  6  invalid input;  7  conflict with the current state
  64 a usage error (unknown option, missing argument): see --help
  1  anything else (a bug: the traceback is printed)"""


def report_error(code: str, message: str, exit_code: int) -> None:
    """One line on stderr: `error: ...`, or under --json one JSON object."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Context) if ctx is not None else None
    if obj is not None and obj.as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message,
                                         "exitCode": exit_code}}), err=True)
    else:
        click.echo(f"error: {message}", err=True)


def handle_errors(command):
    """One place that turns the exception tree into a line on stderr and an exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            # Read alone: `secret-key` must work where the whole configuration is not valid yet.
            logs.configure(Settings.only_from_env("log_level").log_level)
            return command(*args, **kwargs)
        except SchedulerError as exc:
            report_error(exc.code, str(exc), exc.exit_code)
            sys.exit(exc.exit_code)
    return wrapper


class Conventions:
    """What every `scheduler` command line accepts: `--json` anywhere before `--`, and usage
    errors as one line (JSON under --json) with exit code EX_USAGE instead of click's 2, which
    README.md gives to "database unreachable"."""

    # A mixin before click's Group/Command: its super() calls reach them, which mypy cannot
    # see from a class based on object, hence the type: ignore[misc] on each.
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        as_json, args = take_json_flag(args)
        if as_json:
            ctx.ensure_object(Context).as_json = True
        return super().parse_args(ctx, args)  # type: ignore[misc]

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)  # type: ignore[misc]
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)  # type: ignore[misc]
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else prog_name or "scheduler"
            message = f"{exc.format_message().rstrip('.')}; see `{path} --help`"
            with Context(take_json_flag(argv)[0]).active():
                report_error("usage", message, EX_USAGE)
            sys.exit(EX_USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def take_json_flag(args: list[str]) -> tuple[bool, list[str]]:
    """Whether `--json` is among `args` (before a `--`), and the args without it."""
    end = args.index("--") if "--" in args else len(args)
    head = args[:end]
    return "--json" in head, [a for a in head if a != "--json"] + args[end:]


class SchedulerGroup(Conventions, click.Group):
    pass


class SchedulerCommand(Conventions, click.Command):
    pass


class Context:
    """What a command needs: the settings and, made on first use, the engine and sessions."""

    def __init__(self, as_json: bool = False):
        self.as_json = as_json
        self.engine: Engine | None = None

    def active(self) -> click.Context:
        """A bare click context holding this one, for reporting outside any command."""
        return click.Context(cli, obj=self)

    @functools.cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    def keys(self) -> crypto.KeyRing:
        return crypto.KeyRing.of(self.settings)

    def connected(self, check_schema_first: bool = True) -> Engine:
        """The engine, made (and its database checked) on first use."""
        if self.engine is None:
            self.engine = make_engine(self.settings)
            check_connection(self.engine)
            if check_schema_first:
                check_schema(self.engine)
        return self.engine

    def sessions(self, check_schema_first: bool = True):
        return make_session_factory(self.connected(check_schema_first))

    def output(self, data, human: str) -> None:
        click.echo(json.dumps(data, default=str, indent=None) if self.as_json else human)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def version() -> str:
    try:
        return metadata.version("post-scheduler")
    except metadata.PackageNotFoundError:  # a checkout used without `pip install`
        return "unknown"


def show_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    obj = ctx.find_object(Context)
    click.echo(json.dumps({"version": version()}) if obj is not None and obj.as_json
               else f"scheduler {version()}")
    ctx.exit()


@click.group(cls=SchedulerGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (or list) instead of text, and errors as JSON on "
                   "stderr; accepted anywhere on the line.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show_version,
              help="Print the version and exit.")
@click.pass_context
def cli(ctx: click.Context, as_json: bool) -> None:
    """Schedule social media posts; the database is the queue."""
    obj = ctx.ensure_object(Context)
    obj.as_json = obj.as_json or as_json


def main() -> None:
    cli.main(prog_name="scheduler")


# -- db -------------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """The database schema."""


def _on_schema(ctx: Context, work):
    """Log in (the schema may be anything) and run `work(engine)`; a database error is one line."""
    engine = ctx.connected(check_schema_first=False)
    try:
        return work(engine)
    except DBAPIError as exc:
        raise DatabaseUnavailable(explain_connect_error(engine, exc)) from None


@db.command("init")
@pass_ctx
@handle_errors
def db_init(ctx: Context) -> None:
    """Create or upgrade the schema on DATABASE_URL (safe to run again)."""
    from app.migrations import init_schema

    applied = _on_schema(ctx, init_schema)
    where = describe(ctx.connected(check_schema_first=False))
    human = (f"applied {', '.join(applied)} on {where}" if applied
             else f"schema already up to date on {where}")
    ctx.output({"applied": applied, "database": where}, human)


@db.command("status")
@pass_ctx
@handle_errors
def db_status(ctx: Context) -> None:
    """Print the database's schema revision and the newest one this code knows."""
    from app.migrations import schema_state

    state = _on_schema(ctx, schema_state)
    current = state.current or (f"{state.old_runner} (old runner, not yet stamped)"
                                if state.old_runner else None)
    if not state.known:
        advice = "newer than this code: run the release that upgraded it"
    elif state.up_to_date:
        advice = "up to date"
    else:
        advice = "run `scheduler db init`"
    ctx.output({"current": state.current, "old_runner": state.old_runner, "head": state.head,
                "up_to_date": state.up_to_date,
                "database": describe(ctx.connected(check_schema_first=False))},
               f"current: {current or 'none (empty database)'}\nhead:    {state.head}\n{advice}")


# -- companies, keys, accounts --------------------------------------------------------------

@cli.group()
def company() -> None:
    """Companies (tenants)."""


@company.command("create")
@click.argument("name")
@click.option("--timezone", "tz_name", default="UTC", show_default=True,
              help="IANA zone the dashboard's calendar is drawn in (e.g. Europe/Paris).")
@pass_ctx
@handle_errors
def company_create(ctx: Context, name: str, tz_name: str) -> None:
    """Create a company and print its id and first API key (shown once)."""
    from app.services.accounts import create_company

    created, key = create_company(ctx.sessions(), name, utcnow(), timezone=tz_name)
    ctx.output({"id": created.id, "name": created.name, "timezone": created.timezone,
                "api_key": key},
               f"company {created.id} ({created.name})\n"
               f"API key (shown once, keep it safe): {key}")


@company.command("list")
@pass_ctx
@handle_errors
def company_list(ctx: Context) -> None:
    """List every company: id, time zone, name."""
    from app.services.accounts import list_companies

    rows = [{"id": c.id, "name": c.name, "timezone": c.timezone, "created_at": c.created_at}
            for c in list_companies(ctx.sessions())]
    ctx.output(rows, "\n".join(f"{r['id']}  {r['timezone']:<20} {r['name']}" for r in rows)
               or "no companies: `scheduler company create NAME` makes one")


@cli.group()
def apikey() -> None:
    """API keys: create, list, revoke."""


@apikey.command("create")
@click.option("--company", "company_id", required=True, help="Company id.")
@pass_ctx
@handle_errors
def apikey_create(ctx: Context, company_id: str) -> None:
    """Create a new API key for a company (shown once)."""
    from app.services.accounts import create_api_key

    record, key = create_api_key(ctx.sessions(), company_id, utcnow())
    ctx.output({"id": record.id, "prefix": record.prefix, "api_key": key},
               f"key {record.id}\nAPI key (shown once, keep it safe): {key}")


@apikey.command("list")
@click.option("--company", "company_id", required=True, help="Company id.")
@pass_ctx
@handle_errors
def apikey_list(ctx: Context, company_id: str) -> None:
    """List a company's keys (prefixes only; the keys themselves are not stored)."""
    from app.services.accounts import list_api_keys

    keys = list_api_keys(ctx.sessions(), company_id)
    rows = [{"id": k.id, "prefix": k.prefix, "created_at": k.created_at,
             "revoked_at": k.revoked_at} for k in keys]
    ctx.output(rows, "\n".join(
        f"{r['id']}  {r['prefix']}...  created {r['created_at']:%Y-%m-%d %H:%M}  "
        f"{'revoked' if r['revoked_at'] else 'active'}" for r in rows) or "no keys")


@apikey.command("revoke")
@click.argument("key_id")
@pass_ctx
@handle_errors
def apikey_revoke(ctx: Context, key_id: str) -> None:
    """Revoke a key by its id: requests with it get 401 from then on."""
    from app.services.accounts import revoke_api_key

    key = revoke_api_key(ctx.sessions(), key_id, utcnow())
    ctx.output({"id": key.id, "revoked_at": key.revoked_at}, f"revoked {key.id}")


@cli.group()
def account() -> None:
    """Social accounts."""


@account.command("add")
@click.option("--company", "company_id", required=True, help="Company id.")
@click.option("--platform", required=True,
              type=click.Choice([p.value for p in LIMITS]))
@click.option("--external-id", required=True,
              help="Page id, IG user id, person/org URN or X user id (anything for sandbox).")
@click.option("--token", required=True, envvar="SCHEDULER_ACCOUNT_TOKEN",
              help="The platform access token (or SCHEDULER_ACCOUNT_TOKEN); stored encrypted.")
@click.option("--name", "display_name", help="A display name.")
@pass_ctx
@handle_errors
def account_add(ctx: Context, company_id: str, platform: str, external_id: str, token: str,
                display_name: str | None) -> None:
    """Connect a social account to a company."""
    from app.services.accounts import add_account

    created = add_account(ctx.sessions(), company_id, platform, external_id, token, utcnow(),
                          display_name=display_name, keys=ctx.keys())
    ctx.output({"id": created.id, "platform": created.platform,
                "external_id": created.external_id, "status": created.status},
               f"account {created.id} ({created.platform} {created.external_id})")


@account.command("reconnect")
@click.argument("account_id")
@click.option("--token", required=True, envvar="SCHEDULER_ACCOUNT_TOKEN",
              help="The new access token (or SCHEDULER_ACCOUNT_TOKEN); stored encrypted.")
@pass_ctx
@handle_errors
def account_reconnect(ctx: Context, account_id: str, token: str) -> None:
    """Give ACCOUNT_ID a new token after the platform refused the old one: the account is active
    again and the posts that were waiting for it are pending again."""
    from app.models import SocialAccount
    from app.services.accounts import reconnect_account

    with ctx.sessions()() as session:
        found = session.get(SocialAccount, account_id)
    if found is None:
        raise NotFound(f"no social account {account_id}")
    account, released = reconnect_account(ctx.sessions(), found.company_id, account_id, token,
                                          utcnow(), keys=ctx.keys())
    ctx.output({"id": account.id, "status": account.status, "released": released},
               f"account {account.id} is active again; {released} waiting post(s) are pending again")


# -- posts ----------------------------------------------------------------------------------

@cli.group()
def post() -> None:
    """Posts."""


@post.command("schedule")
@click.option("--account", "account_ids", required=True, multiple=True,
              help="Social account id (repeat for several accounts).")
@click.option("--at", "at",
              help="When: ISO 8601 with an offset (2026-12-01T09:00:00+01:00), a local time "
                   "with --timezone, or 'now' / '+90s' / '+5m' for a time from now. Without "
                   "it the posts are drafts (`scheduler post queue POST_ID --at ...` later).")
@click.option("--timezone", "tz_name", help="IANA zone for a local --at (e.g. Europe/Paris).")
@click.option("--media", "media_urls", multiple=True, help="A media URL (repeatable).")
@click.option("--media-id", "media_ids", multiple=True,
              help="Stored media's id (POST /media), before the URLs (repeatable).")
@click.option("--part", "parts", multiple=True,
              help="A reply after TEXT, making a thread (repeatable, in order).")
@click.option("--first-comment", help="A comment posted on the post right after it.")
@click.argument("text")
@pass_ctx
@handle_errors
def post_schedule(ctx: Context, account_ids: tuple[str, ...], at: str | None, tz_name: str | None,
                  media_urls: tuple[str, ...], media_ids: tuple[str, ...], parts: tuple[str, ...],
                  first_comment: str | None, text: str) -> None:
    """Schedule TEXT on one or more accounts (`post create`: the same), or without --at save
    it as a draft on each."""
    from app.models import SocialAccount
    from app.services.media import MediaRef
    from app.services.posts import NewPost, schedule_post

    now = utcnow()
    sessions = ctx.sessions()
    with sessions() as session:
        first = session.get(SocialAccount, account_ids[0])
        if first is None:
            raise NotFound(f"no social account {account_ids[0]}")
        if at is None and tz_name is not None:
            raise InvalidInput("--timezone only says how to read --at: give both")
    # `now` and `+N` are instants already; any other time is read as the API reads scheduledAt;
    # no --at: drafts.
    relative = at is not None and (at.strip().lower() == "now" or at.strip().startswith("+"))
    request = NewPost(list(account_ids), text,
                      parse_when(at, now) if at is not None and relative else at,
                      timezone=tz_name, media_urls=tuple(media_urls),
                      media=tuple([MediaRef(media_id=m) for m in media_ids]
                                  + [MediaRef(url=u) for u in media_urls]) if media_ids else (),
                      not_before=None if relative else now, parts=parts,
                      first_comment=first_comment)
    posts = schedule_post(sessions, first.company_id, request, now,
                          max_attempts=ctx.settings.max_attempts).posts
    rows = [_post_row(p) for p in posts]
    ctx.output(rows, "\n".join(_post_line(r) for r in rows))


post.add_command(post_schedule, "create")


def _post_row(p) -> dict:
    return {"id": p.id, "status": p.status, "schedule_id": p.schedule and p.schedule.id,
            "account_id": p.social_account_id,
            "run_at": p.schedule and p.schedule.run_at.isoformat()}


def _post_line(row: dict) -> str:
    if row["schedule_id"] is None:
        return f"post {row['id']} saved as a draft"
    return f"post {row['id']} (schedule {row['schedule_id']}) due {row['run_at']}"


@post.command("queue")
@click.argument("post_id")
@click.option("--at", "at", required=True,
              help="ISO 8601 with an offset, a local time (--timezone, else the company's "
                   "zone), or 'best': the account's next free best time.")
@click.option("--timezone", "tz_name", help="IANA zone for a local --at (e.g. Europe/Paris).")
@pass_ctx
@handle_errors
def post_queue(ctx: Context, post_id: str, at: str, tz_name: str | None) -> None:
    """Queue the draft POST_ID (POST /scheduled-posts/{id}/schedule)."""
    from app.services.posts import owner_of_post, schedule_draft

    sessions = ctx.sessions()
    queued = schedule_draft(sessions, owner_of_post(sessions, post_id), post_id, at.strip(),
                            tz_name, utcnow(), ctx.settings.max_attempts)
    row = _post_row(queued)
    ctx.output(row, _post_line(row))


def parse_when(value: str, now: datetime) -> datetime:
    """`now` or `+N[s|m|h]`: a time from now."""
    text = value.strip().lower()
    if text == "now":
        return now
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[1:-1], text[-1]) if text[-1] in units else (text[1:], "s")
    try:
        seconds = float(number) * units[unit]
        if not seconds >= 0:
            raise ValueError(number)
        return now + timedelta(seconds=seconds)
    except ValueError:
        raise InvalidInput(f"{value!r}: use +90s, +5m or +2h") from None
    except OverflowError:
        raise InvalidInput(f"{value!r} is too far in the future") from None


@post.command("import")
@click.argument("csv_file", type=click.File("rb"))
@click.option("--company", "company_id", required=True, help="Company id (the rows' accounts' company).")
@pass_ctx
@handle_errors
def post_import(ctx: Context, csv_file, company_id: str) -> None:
    """Schedule the posts of CSV_FILE ('-': stdin) as POST /imports does: every row checked as
    POST /schedule-post checks it, all imported in one transaction or none."""
    from app.api.body import HttpError, read_limited
    from app.api.imports import LIMIT_SETTING, import_csv
    from app.services.accounts import get_company

    sessions = ctx.sessions()
    get_company(sessions, company_id)  # 404 for an unknown company, before reading the file
    try:
        data = read_limited(csv_file, ctx.settings.import_max_bytes, LIMIT_SETTING)
    except HttpError as exc:  # too large
        raise InvalidInput(exc.message) from None
    with sessions.begin() as session:
        result = import_csv(session, company_id, data, utcnow(), ctx.settings.max_attempts)
    ctx.output(result.model_dump(), f"imported {result.rows} row(s): {result.posts} post(s) "
                                    f"scheduled, {result.drafts} draft(s)")


@post.command("list")
@click.option("--company", "company_id", required=True, help="Company id.")
@click.option("--status", type=click.Choice([s.value for s in PostStatus]),
              help="Only posts in this status.")
@click.option("--client", "client_id", help="Only this client's posts.")
@click.option("--account", "account_id", help="Only this social account's posts.")
@click.option("--from", "run_from", help="Scheduled at or after (ISO 8601; local = company zone).")
@click.option("--to", "run_to", help="Scheduled before (ISO 8601; local = company zone).")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--cursor", help="The next_cursor of the previous page.")
@pass_ctx
@handle_errors
def post_list(ctx: Context, company_id: str, status: str | None, client_id: str | None,
              account_id: str | None, run_from: str | None, run_to: str | None, limit: int,
              cursor: str | None) -> None:
    """A company's posts in time order, filtered as GET /scheduled-posts filters them."""
    from app.api.schemas import PostOut
    from app.services.accounts import get_company
    from app.services.posts import PostFilter, list_posts

    sessions = ctx.sessions()
    tz_name = get_company(sessions, company_id).timezone
    filters = PostFilter(status=status, client_id=client_id, social_account_id=account_id,
                         run_from=parse_instant(run_from, tz_name) if run_from else None,
                         run_to=parse_instant(run_to, tz_name) if run_to else None)
    page, next_cursor = list_posts(sessions, company_id, filters, limit, cursor)
    items = [PostOut.of(p).model_dump(mode="json") for p in page]
    lines = [f"{p['id']}  {p['scheduledAt'] or '(draft)':<20}  {p['status']:<9} "
             f"{p['queueStatus'] or '-':<10} "
             f"{p['platform']:<9} {p['content'][:40]!r}" for p in items]
    if next_cursor:
        lines.append(f"more: --cursor {next_cursor}")
    ctx.output({"items": items, "next_cursor": next_cursor}, "\n".join(lines) or "no posts")


@post.command("cancel")
@click.argument("post_id")
@pass_ctx
@handle_errors
def post_cancel(ctx: Context, post_id: str) -> None:
    """Cancel POST_ID (a pending or waiting post): the worker will never send it."""
    from app.services.posts import cancel_post, owner_of_post

    sessions = ctx.sessions()
    cancelled = cancel_post(sessions, owner_of_post(sessions, post_id), post_id, utcnow())
    ctx.output({"id": cancelled.id, "status": cancelled.status,
                "queue_status": cancelled.schedule and cancelled.schedule.status},
               f"post {cancelled.id} is cancelled")


@cli.command("demo")
@click.option("--posts", "count", default=5, show_default=True, help="How many sandbox posts.")
@click.option("--spread", default=20, show_default=True,
              help="Seconds over which the posts fall due.")
@pass_ctx
@handle_errors
def demo(ctx: Context, count: int, spread: int) -> None:
    """Create a demo company with a sandbox account and posts due over the next seconds."""
    from app.services.accounts import add_account, create_company
    from app.services.posts import NewPost, schedule_post

    if count < 1 or spread < 0:
        raise InvalidInput("--posts must be at least 1 and --spread not negative")
    now, sessions = utcnow(), ctx.sessions()
    created, key = create_company(sessions, "Demo company", now)
    sandbox = add_account(sessions, created.id, Platform.SANDBOX, f"demo-{created.id[:8]}", "demo-token",
                          now, display_name="Sandbox demo", keys=ctx.keys())
    posts = [schedule_post(sessions, created.id, NewPost(
        [sandbox.id], f"Demo post {i + 1} of {count}",
        now + timedelta(seconds=spread * (i + 1) / count)), now).posts[0] for i in range(count)]
    ctx.output({"company_id": created.id, "api_key": key, "account_id": sandbox.id,
                "posts": [p.id for p in posts]},
               f"company {created.id}, sandbox account {sandbox.id}\n"
               f"API key (shown once): {key}\n"
               f"{count} sandbox posts due over the next {spread} s: run `scheduler worker run --loop`")


# -- worker and queue -----------------------------------------------------------------------

def worker_options(command):
    command = click.option("--loop", is_flag=True,
                           help="Poll every second until the loop budget is spent, so a post "
                                "goes out within about a second of its time.")(command)
    return click.option("--budget", type=float, default=None,
                        help="Seconds this run may keep claiming (default SCHEDULER_RUN_BUDGET, "
                             "50, or with --loop SCHEDULER_LOOP_BUDGET, 62).")(command)


@click.command("run", cls=SchedulerCommand, context_settings={"help_option_names": ["-h", "--help"]},
               epilog=EXIT_CODES_HELP)
@worker_options
@click.pass_context
@handle_errors
def worker_run(click_ctx: click.Context, loop: bool, budget: float | None) -> None:
    """Run one worker cycle: recover stale claims, claim due posts, publish, record.

    This is what cron runs (via worker_trigger.py). It logs one JSON line per post and one
    summary line per run on stderr.
    """
    from worker.runner import run_worker

    overrides: dict[str, Any] = ({} if budget is None
                                 else {"loop_budget" if loop else "run_budget": budget})
    summary = run_worker(Settings.from_env(**overrides), loop=loop)
    ctx = click_ctx.find_object(Context)
    if ctx is not None and ctx.as_json:
        click.echo(json.dumps(summary.as_log()))


@cli.group()
def worker() -> None:
    """The worker (what cron runs)."""


worker.add_command(worker_run)


@cli.group()
def queue() -> None:
    """Look at and act on the queue."""


@queue.command("stats")
@pass_ctx
@handle_errors
def queue_stats(ctx: Context) -> None:
    """Rows of post_schedule by status."""
    from worker.queue import count_by_status

    counts = count_by_status(ctx.sessions())
    ordered = {s: counts.get(s, 0) for s in QueueStatus}
    ctx.output(ordered, "\n".join(f"{k:<11}{v:>8}" for k, v in ordered.items()))


@queue.command("retry")
@click.argument("post_id")
@pass_ctx
@handle_errors
def queue_retry(ctx: Context, post_id: str) -> None:
    """Put a failed (or missed) post back in the queue, due now, with its attempts reset.

    POST_ID is the post's id (a UUID, as the API and `post list` show it); the number of its
    schedule row is accepted too."""
    from app.services.posts import owner_of_post, retry_post

    sessions = ctx.sessions()
    if post_id.isdigit():
        schedule = retry_post(sessions, utcnow(), schedule_id=int(post_id))
        ctx.output({"schedule_id": schedule.id, "post_id": schedule.post_detail_id,
                    "status": QueueStatus.PENDING},
                   f"schedule {schedule.id} is pending again, due now")
        return
    schedule = retry_post(sessions, utcnow(), company_id=owner_of_post(sessions, post_id),
                          post_id=post_id)
    ctx.output({"schedule_id": schedule.id, "post_id": schedule.post_detail_id,
                "status": QueueStatus.PENDING},
               f"post {schedule.post_detail_id} is pending again, due now")


@queue.command("prune")
@click.option("--older-than", "older_than", default="90d", show_default=True,
              help="Delete history older than this: 90d, 12h, 30m.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@pass_ctx
@handle_errors
def queue_prune(ctx: Context, older_than: str, dry_run: bool) -> None:
    """Delete finished attempts, worker runs, idempotency keys and jobs older than a window,
    a few thousand rows per transaction. Posts, and each post's last attempt, are kept."""
    from app.services.retention import parse_duration, prune

    window = parse_duration(older_than)
    report = prune(ctx.sessions(), utcnow(), window, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    ctx.output(report.as_dict(), "\n".join(
        [f"{verb}, older than {report.cutoff.isoformat(timespec='seconds')}:"]
        + [f"  {name:<17}{getattr(report, name):>9}"
           for name in ("publish_attempts", "worker_runs", "idempotency_keys", "jobs",
                        "webhook_deliveries")]))


# -- odds and ends --------------------------------------------------------------------------

@cli.group("secret-key", invoke_without_command=True)
@click.pass_context
def secret_key(click_ctx: click.Context) -> None:
    """Print a new key for SCHEDULER_SECRET_KEY (encrypts access tokens at rest)."""
    if click_ctx.invoked_subcommand is None:
        key = crypto.new_key()
        click_ctx.ensure_object(Context).output({"secret_key": key}, key)


@secret_key.command("rotate")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(min=1),
              help="Rows re-sealed per transaction.")
@pass_ctx
@handle_errors
def secret_key_rotate(ctx: Context, batch: int) -> None:
    """Re-seal every stored token and webhook secret with SCHEDULER_SECRET_KEY, opening them
    with it or SCHEDULER_OLD_SECRET_KEYS. Safe to interrupt and run again."""
    from app.services.keys import rotate

    report = rotate(ctx.sessions(), batch=batch, keys=ctx.keys())
    ctx.output(report.as_dict(), (f"re-sealed {report.resealed}, already under the current key "
                                  f"{report.already_current}, unreadable {len(report.unreadable)}"))
    if report.unreadable:
        raise ConfigError(f"{len(report.unreadable)} stored secrets cannot be decrypted with "
                          "SCHEDULER_SECRET_KEY or SCHEDULER_OLD_SECRET_KEYS (first: "
                          f"{report.unreadable[0]}): add the key they were sealed with to "
                          "SCHEDULER_OLD_SECRET_KEYS and run this again")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@handle_errors
def serve(host: str, port: int) -> None:
    """Run the API with Flask's development server (use gunicorn in production)."""
    from app import create_app

    create_app().run(host=host, port=port)
