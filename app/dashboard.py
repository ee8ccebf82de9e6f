"""GET /dashboard: the queue-health screen, the calendar and post details, server-rendered.

Sign-in takes an API key once and keeps only its hash in an httponly, SameSite=Strict session
cookie; every page re-checks it, so revoking the key signs the session out. The sign-in and
sign-out forms carry a token bound to the session and must come from this site's own pages
(Origin/Referer), so no other site can sign a visitor in or out (login CSRF). The Cancel and Retry
buttons call the JSON API with the session's CSRF token. Every asset is served by the app.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta, timezone

from flask import (
    Blueprint, abort, current_app, redirect, render_template, request, send_file, session, url_for,
)

from app.api.spec import session_company, sessions
from app.errors import NotFound, Unauthorized
from app.security import same_origin, tokens_match
from app.services import accounts, best_times, connect, health, metrics, posts
from app.services import media as media_store
from app.services.accounts import hash_key
from app.statuses import EDITABLE, RETRYABLE, PostStatus, QueueStatus
from app.timeutil import utcnow, zone

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


def _company_or_login():
    """The signed-in company, or None (and the caller shows the sign-in page)."""
    if "key_hash" not in session:
        return None
    try:
        return accounts.get_company(sessions(), session_company())
    except Unauthorized:
        return None


@bp.get("")
def overview():
    company = _company_or_login()
    if company is None:
        return _sign_in_page(request.args.get("error"))
    settings = current_app.extensions["scheduler"]["settings"]
    figures = health.gather(sessions(), company.id, utcnow(), settings.lock_timeout)
    status, verdicts = health.evaluate(figures)
    tz = zone(company.timezone)
    return render_template("dashboard/overview.html", company=company, figures=figures,
                           status=status, verdicts=verdicts, statuses=tuple(QueueStatus),
                           chart=_chart(figures.throughput, figures.now.astimezone(tz)), tz=tz)


def _sign_in_page(error: str | None, status: int = 200):
    # The form's token is bound to this browser's session cookie: a form posted from another
    # site carries neither (SameSite=Strict), so nobody can sign a visitor in as themselves.
    session.setdefault("csrf", secrets.token_urlsafe(32))
    return render_template("dashboard/login.html", error=error), status


@bp.post("/login")
def login():
    if not same_origin() or not tokens_match(request.form.get("csrf"), session.get("csrf")):
        return _sign_in_page("This sign-in form expired or came from another site: "
                             "sign in again on this page.", 403)
    key = request.form.get("api_key", "").strip()
    if not key or accounts.company_for_key(sessions(), key) is None:
        return redirect(url_for("dashboard.overview", error="That API key is unknown or revoked."))
    session.clear()
    session.permanent = True
    session.update(key_hash=hash_key(key), csrf=secrets.token_urlsafe(32))
    return redirect(url_for("dashboard.overview"))


@bp.post("/logout")
def logout():
    if same_origin() and tokens_match(request.form.get("csrf"), session.get("csrf")):
        session.clear()
    return redirect(url_for("dashboard.overview"))


@bp.get("/calendar")
def calendar():
    company = _company_or_login()
    if company is None:
        return redirect(url_for("dashboard.overview"))
    tz = zone(company.timezone)
    view = request.args.get("view", "week")
    if view not in ("week", "month"):
        abort(404)
    try:
        anchor = date.fromisoformat(request.args["date"]) if "date" in request.args else \
            utcnow().astimezone(tz).date()
    except ValueError:
        abort(404)
    first, last = _range(view, anchor)
    start = datetime.combine(first, time(), tz).astimezone(timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(timezone.utc)
    page, _ = posts.list_posts(sessions(), company.id, posts.PostFilter(run_from=start, run_to=end),
                               limit=2000)
    by_day: dict[date, list] = {}
    for post in page:
        local = post.schedule.run_at.astimezone(tz)
        by_day.setdefault(local.date(), []).append((local, post))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    return render_template("dashboard/calendar.html", company=company, view=view, days=days,
                           by_day=by_day, anchor=anchor, month=anchor.month, editable=EDITABLE,
                           previous=(anchor - step).isoformat(), next=(anchor + step).isoformat(),
                           today=utcnow().astimezone(tz).date())


@bp.get("/compose")
def compose():
    """Write a post for several accounts (counters and checks from POST /limits/check), or edit
    one (`?post=ID`): a draft, or a pending post's text, media and time. planner.js saves
    through the JSON API."""
    company = _company_or_login()
    if company is None:
        return redirect(url_for("dashboard.overview"))
    post, local = None, ""
    if "post" in request.args:
        try:
            post, _ = posts.get_post(sessions(), company.id, request.args["post"])
        except NotFound:
            abort(404)
        if post.status != PostStatus.DRAFT and post.schedule.status not in EDITABLE:
            return redirect(url_for("dashboard.post_detail", post_id=post.id))
        if post.schedule is not None:
            local = post.schedule.run_at.astimezone(zone(company.timezone)).strftime("%Y-%m-%dT%H:%M")
    return render_template("dashboard/compose.html", company=company, post=post, local=local,
                           accounts=accounts.list_accounts(sessions(), company.id))


def _range(view: str, anchor: date) -> tuple[date, date]:
    """Monday-to-Sunday weeks: one, or those covering the anchor's month."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return first, first + timedelta(days=6)
    month_start = anchor.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    first = month_start - timedelta(days=month_start.weekday())
    last_day = next_month - timedelta(days=1)
    return first, last_day + timedelta(days=6 - last_day.weekday())


@bp.get("/accounts", endpoint="accounts")
def accounts_page():
    company = _company_or_login()
    if company is None:
        return redirect(url_for("dashboard.overview"))
    from app.api.connect import context

    listed = accounts.list_accounts(sessions(), company.id)
    return render_template("dashboard/accounts.html", company=company, accounts=listed,
                           platforms=connect.available(context()), tz=zone(company.timezone),
                           expiring=connect.expiring(listed, utcnow()),
                           connected=request.args.get("connected"),
                           connect_error=request.args.get("connect_error"))


@bp.get("/posts/<post_id>")
def post_detail(post_id: str):
    company = _company_or_login()
    if company is None:
        return redirect(url_for("dashboard.overview"))
    try:
        post, attempts = posts.get_post(sessions(), company.id, post_id)
    except NotFound:
        abort(404)
    return render_template("dashboard/post.html", company=company, post=post, attempts=attempts,
                           tz=zone(company.timezone), rate=metrics.engagement_rate,
                           post_metrics=metrics.post_metrics(sessions(), company.id, post.id),
                           can_cancel=post.status == PostStatus.DRAFT
                           or post.schedule.status in EDITABLE,
                           can_retry=post.schedule is not None
                           and post.schedule.status in RETRYABLE)


@bp.get("/best-times")
def best_times_page():
    """A 7 x 24 heatmap of an account's best-time scores (GET /optimal-times, every slot)."""
    company = _company_or_login()
    if company is None:
        return redirect(url_for("dashboard.overview"))
    account_list = accounts.list_accounts(sessions(), company.id)
    chosen = request.args.get("account") or (account_list[0].id if account_list else None)
    if chosen is not None and chosen not in {a.id for a in account_list}:
        abort(404)
    grid, basis, top = None, None, set()
    if chosen is not None:
        _, slots = best_times.optimal_times(sessions(), company.id, utcnow(), account_id=chosen,
                                            top=7 * 24)  # every slot, best first
        by_slot = {(s.weekday, s.hour): s for s in slots}
        grid = [[by_slot[(d, h)] for h in range(24)] for d in range(7)]
        basis, top = slots[0].basis, {(s.weekday, s.hour) for s in slots[:best_times.TOP]}
    return render_template("dashboard/best_times.html", company=company, accounts=account_list,
                           chosen=chosen, grid=grid, basis=basis, top=top,
                           weekdays=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])


@bp.get("/media/<media_id>/thumbnail")
def media_thumbnail(media_id: str):
    """A small PNG of the company's stored image, for the post page and the calendar."""
    company = _company_or_login()
    if company is None:
        abort(404)
    media_dir = current_app.extensions["scheduler"]["settings"].media_dir
    try:
        with sessions()() as session:
            found = media_store.get_media(session, company.id, media_id)
        path = media_store.thumbnail(media_dir, found)
    except (NotFound, OSError):
        abort(404)
    if path is None:
        abort(404)
    return send_file(path, mimetype="image/png", max_age=3600)


def _chart(values: list[int], now: datetime, width: int = 600, height: int = 120,
           tick_minutes: int = 15) -> dict:
    """Bar geometry for the throughput SVG, drawn server-side: one bar a minute, oldest first,
    and the time axis under it, a tick every `tick_minutes` in the company's clock (`now` is
    local). The SVG stretches to the page's width, so the tick labels are HTML under it
    (evenly spaced, as the ticks are), which keeps their letters undistorted."""
    top = max(values) if values and max(values) > 0 else 1
    bar = width / max(len(values), 1)
    bars = [{"x": round(i * bar, 1), "w": round(bar - 1, 1), "h": round(v / top * (height - 14), 1),
             "y": round(height - v / top * (height - 14), 1), "v": v, "ago": len(values) - i}
            for i, v in enumerate(values)]
    ticks = [{"x": round(i * bar, 1),
              "label": (now - timedelta(minutes=len(values) - i)).strftime("%H:%M"),
              "ago": len(values) - i}
             for i in range(0, len(values) + 1, tick_minutes)]
    return {"width": width, "height": height, "bars": bars, "top": top, "ticks": ticks}


def register(app) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def csrf_token():
        return {"csrf": session.get("csrf", "")}

