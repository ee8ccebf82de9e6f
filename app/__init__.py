"""Flask API and everything the API and the worker share."""
from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Settings come from `config["SETTINGS"]`, else the environment; nothing
    runs at import. Outside development it refuses to start without SCHEDULER_SECRET_KEY."""
    import logging

    from app import api, dashboard, logs, metrics, security
    from app.config import Settings
    from app.db import make_engine, make_session_factory

    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("SETTINGS") or Settings.from_env()
    settings.validate()
    if not logging.getLogger().handlers:  # under gunicorn or `flask run`: JSON lines on stderr
        logs.configure(settings.log_level)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Flask's documented setting; mypy sees app.json as the base provider, which lacks it.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config.update(SECRET_KEY=session_key(settings), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", PERMANENT_SESSION_LIFETIME=12 * 3600,
                      SESSION_COOKIE_SECURE=settings.environment == "production")
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    app.extensions["scheduler"] = {"settings": settings, "engine": engine, "sessions": sessions,
                                   "metrics": metrics.make_registry(sessions)}
    api.register(app)
    dashboard.register(app)
    app.register_blueprint(metrics.bp)
    security.register(app, settings.trusted_proxies)
    return app


def session_key(settings) -> bytes:
    """The dashboard's cookie-signing key, derived from (never equal to) the token key."""
    import hashlib
    import hmac

    from app import crypto

    base = settings.secret_key.encode() if settings.secret_key else crypto.development_key()
    return hmac.new(base, b"post-scheduler dashboard session", hashlib.sha256).digest()
