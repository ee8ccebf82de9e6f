"""Flask API and everything the API and the worker share."""
from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Settings come from `config`, else the environment; nothing runs at import."""
    from app.api.health import bp as health_bp
    from app.config import Settings
    from app.db import make_engine, make_session_factory

    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("SETTINGS") or Settings.from_env()
    engine = make_engine(settings)
    app.extensions["scheduler"] = {"settings": settings, "engine": engine,
                                   "sessions": make_session_factory(engine)}
    app.register_blueprint(health_bp)
    return app
