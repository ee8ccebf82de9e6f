"""GET /healthz (is the database reachable) and GET /openapi.json: no key needed for either."""
from __future__ import annotations

from flask import current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.api.schemas import Health
from app.api.spec import Api

api = Api("health", "operations")


@api.route("GET", "/healthz", summary="Is the database reachable (for load balancers)",
           response=Health, auth=False)
def healthz():
    engine = current_app.extensions["scheduler"]["engine"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError:
        return Health(status="unhealthy", database="unreachable"), 503
    return Health(status="ok", database="reachable")


@api.blueprint.get("/openapi.json")
def openapi():
    return jsonify(current_app.extensions["scheduler"]["openapi"])
