"""/openapi.json is a valid OpenAPI 3.1 document generated from the request models, covers
every route, and holds up under schemathesis: >= 200 generated requests against the app on
MariaDB, no 5xx, and no response that breaks the document."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from app.api.schemas import SchedulePostIn

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
EXAMPLES_PER_OPERATION = 30
MIN_REQUESTS = 200
NOT_JSON_API = {"static", "dashboard", "metrics"}  # HTML pages and Prometheus text


def test_the_document_is_valid_openapi(db, tenant, api):
    document = api.get("/openapi.json", key=None).get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_route_is_documented(db, tenant, api):
    document = api.get("/openapi.json", key=None).get_json()
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in api.app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in NOT_JSON_API or rule.rule == "/openapi.json":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def test_the_request_schema_is_the_validating_model(db, tenant, api):
    """Not a hand-written copy: the body schema is exactly what pydantic says the model is."""
    document = api.get("/openapi.json", key=None).get_json()
    in_document = document["components"]["schemas"]["SchedulePostIn"]
    from_model = SchedulePostIn.model_json_schema(ref_template="#/components/schemas/{model}")
    from_model.pop("$defs", None)
    assert in_document == from_model
    assert in_document["additionalProperties"] is False


@pytest.mark.mariadb
def test_schemathesis_finds_no_server_error_and_no_broken_response(mariadb, tenant, api):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def exercise(case):
            case.call_and_validate(headers=auth, checks=CHECKS)
            sent[operation.label] = sent.get(operation.label, 0) + 1

        exercise()
    assert len(sent) == len(list(schema.get_all_operations()))
    assert sum(sent.values()) >= MIN_REQUESTS, sent
