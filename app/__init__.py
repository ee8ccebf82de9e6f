"""Flask API and everything the API and the worker share."""
from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Settings come from `config["SETTINGS"]`, else the environment; nothing
    runs at import. Outside development it refuses to start without SCHEDULER_SECRET_KEY."""
    import logging
    import os

    from app import api, logs
    from app.config import Settings
    from app.db import make_engine, make_session_factory

    if not logging.getLogger().handlers:  # under gunicorn or `flask run`: JSON lines on stderr
        logs.configure(os.environ.get("SCHEDULER_LOG_LEVEL", "INFO"))
    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("SETTINGS") or Settings.from_env()
    settings.validate()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    engine = make_engine(settings)
    app.extensions["scheduler"] = {"settings": settings, "engine": engine,
                                   "sessions": make_session_factory(engine)}
    api.register(app)
    return app
