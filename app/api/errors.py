"""Every answer that is not a success, in one place: the exception tree to HTTP, as the JSON
error body of docs/architecture.md. Also the request id and the one access-log line per request.

No stack trace ever reaches a client: an unexpected error is logged with its request id and
answered 500 with that id, so the operator can find it.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from app.api.spec import HttpError
from app.errors import (
    Conflict, DatabaseUnavailable, InvalidInput, NotConfigured, NotFound, PlatformError,
    SchedulerError, SchemaMissing, Unauthorized,
)
from app.logs import event

log = logging.getLogger("api")

# (HTTP status, error code) for each branch of the exception tree; anything else is a 500.
STATUS = [
    (NotFound, 404, "not_found"),
    (InvalidInput, 422, "validation_failed"),
    (Conflict, 409, "conflict"),
    (Unauthorized, 401, "unauthorized"),
    (DatabaseUnavailable, 503, "database_unavailable"),
    (SchemaMissing, 503, "schema_missing"),
    (NotConfigured, 409, "not_configured"),
    (PlatformError, 502, "platform_error"),
]
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 415: "unsupported_media_type"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   headers: dict | None = None):
    body = {"error": {"code": code, "message": message, "fields": fields or {},
                      "requestId": g.get("request_id")}}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.register_error_handler(SchedulerError, _scheduler_error)
    app.register_error_handler(HttpError, lambda e: error_response(e.status, e.code, e.message))
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)


def _start() -> None:
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.started = time.monotonic()


def _finish(response):
    response.headers["X-Request-Id"] = g.get("request_id", "")
    event(log, "request", method=request.method, path=request.path, status=response.status_code,
          ms=round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 1),
          request_id=g.get("request_id"), company_id=g.get("company_id"))
    return response


def _scheduler_error(exc: SchedulerError):
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            headers = {"WWW-Authenticate": 'Bearer realm="post-scheduler"'} if status == 401 else {}
            return error_response(status, code, str(exc), getattr(exc, "fields", None), headers)
    return _unexpected(exc)


def _http_exception(exc: HTTPException):
    status = exc.code or 500
    if status >= 500:
        return _unexpected(exc)
    messages = {404: f"no such endpoint: {request.path} (see /openapi.json)",
                405: f"{request.method} is not allowed on {request.path}",
                413: "the request body is too large"}
    headers = {"Allow": exc.get_response().headers["Allow"]} if status == 405 else {}
    return error_response(status, HTTP_CODES.get(status, "bad_request"),
                          messages.get(status, exc.description or exc.name), headers=headers)


def _database_error(exc: DBAPIError):
    event(log, "database_error", logging.ERROR, request_id=g.get("request_id"),
          error=str(exc.orig or exc).splitlines()[0])
    return error_response(503, "database_unavailable",
                          "the database is unavailable right now: try again shortly")


def _unexpected(exc: Exception):
    log.error("unexpected error in %s %s (request %s)", request.method, request.path,
              g.get("request_id"), exc_info=exc)
    return error_response(500, "internal_error",
                          f"an unexpected error happened; quote request id {g.get('request_id')} "
                          "to the operator")
