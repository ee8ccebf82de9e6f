"""The HTTP API: blueprints of thin views, the error handlers, and the generated OpenAPI document."""
from __future__ import annotations

from flask import Flask

from app.api import (
    accounts, connect, errors, health, imports, limits, media, planning, posts, queue_health,
    webhooks,
)
from app.api.spec import openapi_document

APIS = (posts.api, imports.api, limits.api, accounts.api, connect.api, media.api, webhooks.api,
        planning.api,
        queue_health.api, health.api)


def register(app: Flask) -> None:
    errors.register(app)
    for api in APIS:
        app.register_blueprint(api.blueprint)
    app.register_blueprint(media.files)
    operations = [op for api in APIS for op in api.operations]
    app.extensions["scheduler"]["openapi"] = openapi_document(
        operations, title="post-scheduler API", version=_version())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("post-scheduler")
    except PackageNotFoundError:
        return "0.0.0"
