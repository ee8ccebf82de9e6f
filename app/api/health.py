"""GET /healthz: is the database reachable (no key needed, for load balancers)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    engine = current_app.extensions["scheduler"]["engine"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError:
        return jsonify(status="unhealthy", database="unreachable"), 503
    return jsonify(status="ok", database="reachable")
