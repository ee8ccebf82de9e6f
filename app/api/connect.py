"""Connecting accounts through the platforms' sign-in: thin views over app/services/connect.py.

The callback answers JSON to an API client (it sends its key) and redirects a browser (it does
not: the platform sent it here) to the dashboard's accounts page, with what happened.
"""
from __future__ import annotations

import secrets
from uuid import UUID

from flask import current_app, redirect, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import NOT_BLANK, AccountOut, Out, Strict
from app.api.spec import Api, sessions
from app.errors import SchedulerError
from app.oauth.base import ConnectRequest, ProviderContext
from app.oauth.registry import connectable
from app.services import connect
from app.timeutil import utcnow
from worker.publishers.http import HttpClient

api = Api("connect", "connect")
PLATFORMS = {"platform": [str(p) for p in connectable()]}
BROWSER_COOKIE = "scheduler_connect"  # the dashboard's flows: bound to the browser that began them
PLATFORM_ERRORS = {
    409: "The platform's app credentials are not set (not_configured: `fields` names the "
         "settings); or the callback's state expired, was used already or began in another browser",
    502: "The platform's token endpoint failed, answered nonsense or refused the app's credentials",
}


class ConnectIn(Strict):
    companyId: UUID | None = None
    clientId: UUID | None = Field(default=None, description="the client the accounts belong to")
    instance: str | None = Field(default=None, min_length=1, max_length=255, pattern=NOT_BLANK,
                                 description="Mastodon: the instance, e.g. https://mastodon.social")
    identifier: str | None = Field(default=None, min_length=1, max_length=255, pattern=NOT_BLANK,
                                   description="Bluesky: the handle or email")
    appPassword: str | None = Field(default=None, min_length=1, max_length=255, pattern=NOT_BLANK,
                                    description="Bluesky: an app password (never the account's)")


class ConnectStarted(Out):
    authorizeUrl: str | None = Field(description="send the user here to grant access")
    state: str | None = Field(description="single use, 10 minutes; the callback brings it back")
    accounts: list[AccountOut] = Field(description="connected at once (flows without a redirect)")


class CallbackQuery(BaseModel):
    # A platform may add parameters of its own: they are ignored, not refused.
    model_config = ConfigDict(extra="ignore")
    state: str = Field(min_length=1, max_length=200)
    code: str | None = Field(default=None, min_length=1, max_length=4096)
    error: str | None = Field(default=None, min_length=1, max_length=200)
    error_description: str | None = Field(default=None, max_length=1000)


class Connected(Out):
    accounts: list[AccountOut]
    created: int = Field(description="how many of them are new (the others were reconnected)")


def context() -> ProviderContext:
    scheduler = current_app.extensions["scheduler"]
    return ProviderContext(scheduler["settings"], HttpClient.from_settings(scheduler["settings"]),
                           sessions(), utcnow)


def request_of(body: ConnectIn) -> ConnectRequest:
    return ConnectRequest(instance=body.instance, identifier=body.identifier,
                          app_password=body.appPassword)


@api.route("POST", "/connect/<platform>", body=ConnectIn, response=ConnectStarted,
           summary="Start connecting an account: send the user to authorizeUrl",
           path_values=PLATFORMS, errors=PLATFORM_ERRORS)
def start(company_id: str, platform: str, body: ConnectIn):
    # From the dashboard (its session, no API key): the flow is bound to this browser too.
    browser = None if request.headers.get("Authorization") else secrets.token_urlsafe(32)
    started = connect.start(context(), company_id, platform, request_of(body),
                            client_id=str(body.clientId) if body.clientId else None,
                            browser=browser)
    out = ConnectStarted(authorizeUrl=started.authorize_url, state=started.state,
                         accounts=[AccountOut.of(c.account) for c in started.accounts])
    if browser is None or started.state is None:
        return out
    cookie = (f"{BROWSER_COOKIE}={browser}; Path=/connect; Max-Age="
              f"{int(connect.STATE_TTL.total_seconds())}; HttpOnly; SameSite=Lax"
              + ("; Secure" if request.is_secure else ""))
    return out, 200, {"Set-Cookie": cookie}


@api.route("GET", "/connect/<platform>/callback", query=CallbackQuery, response=Connected,
           status=201, statuses={200: "Every account was one the company had: reconnected"},
           summary="Finish connecting: the platform sends the user back here with code and state",
           optional_auth="Without an API key (a browser sent back by the platform): redirected "
                         "to the dashboard's accounts page, which says what happened",
           path_values=PLATFORMS, errors=PLATFORM_ERRORS)
def callback(company_id: str | None, platform: str, query: CallbackQuery):
    args = query.model_dump(exclude_none=True)
    if company_id is not None:
        connected = connect.finish(context(), platform, args, company_id)
        created = sum(c.created for c in connected)
        return (Connected(accounts=[AccountOut.of(c.account) for c in connected], created=created),
                201 if created else 200)
    try:
        connected = connect.finish(context(), platform, args, None,
                                   request.cookies.get(BROWSER_COOKIE))
    except SchedulerError as exc:
        return redirect(url_for("dashboard.accounts", connect_error=str(exc)))
    names = ", ".join(c.account.display_name or c.account.external_id for c in connected)
    return redirect(url_for("dashboard.accounts", connected=f"{platform}: {names}"))
