"""Webhooks: thin views over app/services/webhooks.py. The signing secret is shown once."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from flask import current_app
from pydantic import Field

from app.api.schemas import WEBHOOK_URL_PATTERN, CompanyQuery, Out, Strict
from app.api.spec import Api, keys, sessions
from app.models import Webhook, WebhookDelivery
from app.statuses import DeliveryStatus
from app.services import webhooks
from app.timeutil import utcnow

api = Api("webhooks", "webhooks")
if TYPE_CHECKING:
    Event = str  # a Literal mypy could read would copy the list
else:
    Event = Literal[webhooks.EVENTS]


class WebhookIn(Strict):
    companyId: UUID | None = None
    url: str = Field(min_length=1, max_length=2048, pattern=WEBHOOK_URL_PATTERN,
                     examples=["https://example.com/hooks/scheduler"],
                     description="http(s); it must resolve to public addresses only")
    events: list[Event] = Field(min_length=1, max_length=len(webhooks.EVENTS))


class WebhookOut(Out):
    id: str
    url: str
    events: list[Event]
    createdAt: datetime

    @classmethod
    def fields_of(cls, w: Webhook) -> dict:
        return dict(id=w.id, url=w.url, events=list(w.events), createdAt=w.created_at)


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signs every delivery (X-Scheduler-Signature); shown only here")


class WebhookList(Out):
    items: list[WebhookOut]


class DeliveryOut(Out):
    id: str
    event: Event
    payload: dict
    attempt: int = Field(description="Attempts made so far")
    status: DeliveryStatus
    httpStatus: int | None = Field(description="The receiver's answer to the last attempt")
    error: str | None
    createdAt: datetime
    deliveredAt: datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> "DeliveryOut":
        return cls(id=d.id, event=d.event, payload=d.payload, attempt=d.attempt, status=d.status,
                   httpStatus=d.http_status, error=d.error, createdAt=d.created_at,
                   deliveredAt=d.delivered_at)


class DeliveryList(Out):
    items: list[DeliveryOut]


@api.route("POST", "/webhooks", summary="Add a webhook; the answer holds its signing secret, once",
           body=WebhookIn, response=WebhookCreated, status=201)
def create_webhook(company_id: str, body: WebhookIn):
    settings = current_app.extensions["scheduler"]["settings"]
    hook, secret = webhooks.create_webhook(sessions(), company_id, body.url, list(body.events),
                                           utcnow(), allow_private=bool(settings.webhook_allow_private),
                                           keys=keys())
    return WebhookCreated(**WebhookOut.fields_of(hook), secret=secret)


@api.route("GET", "/webhooks", summary="The company's webhooks (never a secret)",
           query=CompanyQuery, response=WebhookList)
def list_webhooks(company_id: str, query: CompanyQuery):
    return WebhookList(items=[WebhookOut(**WebhookOut.fields_of(w))
                              for w in webhooks.list_webhooks(sessions(), company_id)])


@api.route("DELETE", "/webhooks/<webhook_id>", summary="Remove a webhook: no more events for it",
           response=WebhookOut)
def delete_webhook(company_id: str, webhook_id: str):
    return WebhookOut(**WebhookOut.fields_of(
        webhooks.delete_webhook(sessions(), company_id, webhook_id, utcnow())))


@api.route("GET", "/webhooks/<webhook_id>/deliveries",
           summary="The webhook's last 100 deliveries, newest first", response=DeliveryList)
def list_deliveries(company_id: str, webhook_id: str):
    return DeliveryList(items=[DeliveryOut.of(d) for d in webhooks.list_deliveries(
        sessions(), company_id, webhook_id)])
