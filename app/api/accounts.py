"""Social accounts and clients: thin views over app/services/accounts.py. Tokens go in, never out."""
from __future__ import annotations

from app.api.schemas import (
    AccountList, AccountOut, ClientIn, ClientList, ClientOut, CompanyQuery, ReconnectIn,
    ReconnectOut, SocialAccountIn,
)
from app.api.spec import Api, keys, sessions
from app.services import accounts
from app.timeutil import utcnow

api = Api("accounts", "accounts")


@api.route("GET", "/social-accounts", summary="The company's social accounts (never a token)",
           query=CompanyQuery, response=AccountList)
def list_accounts(company_id: str, query: CompanyQuery):
    return AccountList(items=[AccountOut.of(a) for a in accounts.list_accounts(sessions(), company_id)])


@api.route("POST", "/social-accounts", summary="Connect a social account (the token is write-only)",
           body=SocialAccountIn, response=AccountOut, status=201,
           conflicts="The company already has this platform's account")
def add_account(company_id: str, body: SocialAccountIn):
    account = accounts.add_account(
        sessions(), company_id, body.platform, body.externalId, body.accessToken, utcnow(),
        display_name=body.displayName, client_id=str(body.clientId) if body.clientId else None,
        token_expires_at=body.tokenExpiresAt, keys=keys())
    return AccountOut.of(account)


@api.route("POST", "/social-accounts/<account_id>/reconnect",
           summary="Give an account a new token: it is active again and its waiting posts pending",
           body=ReconnectIn, response=ReconnectOut)
def reconnect_account(company_id: str, account_id: str, body: ReconnectIn):
    account, released = accounts.reconnect_account(
        sessions(), company_id, account_id, body.accessToken, utcnow(),
        token_expires_at=body.tokenExpiresAt, keys=keys())
    return ReconnectOut(account=AccountOut.of(account), released=released)


@api.route("GET", "/clients", summary="The company's clients with their social accounts",
           query=CompanyQuery, response=ClientList)
def list_clients(company_id: str, query: CompanyQuery):
    return ClientList(items=[ClientOut.of(c, owned)
                             for c, owned in accounts.list_clients(sessions(), company_id)])


@api.route("POST", "/clients", summary="Add a client (an agency's customer)", body=ClientIn,
           response=ClientOut, status=201)
def add_client(company_id: str, body: ClientIn):
    return ClientOut.of(accounts.create_client(sessions(), company_id, body.name, utcnow()), [])
