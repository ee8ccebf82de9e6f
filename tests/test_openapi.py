"""/openapi.json is a valid OpenAPI 3.1 document generated from the request models, covers
every route, and agrees with the server under schemathesis with every check (valid data
accepted, invalid data refused, each status documented, no 5xx) against the app on MariaDB."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from app import create_app
from app.api.schemas import SchedulePostIn
from app.api.spec import DocumentSchema

from conftest import serving

EXAMPLES_PER_OPERATION = 10
MIN_CASES = 100
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "schemathesis.txt"
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
    from_model = SchedulePostIn.model_json_schema(ref_template="#/components/schemas/{model}",
                                                  schema_generator=DocumentSchema)
    from_model.pop("$defs", None)
    assert in_document == from_model
    assert in_document["additionalProperties"] is False


@pytest.fixture
def served(mariadb):
    """The app on 127.0.0.1:<free port> over the test's MariaDB database, as a real server.
    Webhook URLs are not resolved (SCHEDULER_WEBHOOK_ALLOW_PRIVATE=1): offline, example.com and
    the fuzzer's host names resolve nowhere, and POST /webhooks would answer 400 to the
    document's own example. The address check has its own tests in tests/test_webhooks.py."""
    # Connect flows configured (their start makes no request; a callback's made-up state is
    # refused before any), so schemathesis reaches past "not configured".
    settings = dataclasses.replace(
        mariadb.settings, webhook_allow_private=1, public_url="https://scheduler.example.com",
        x_client_id="id", x_client_secret="secret", linkedin_client_id="id",
        linkedin_client_secret="secret")
    with serving(create_app({"SETTINGS": settings})) as url:
        yield url


@pytest.mark.mariadb
def test_schemathesis_with_every_check_finds_no_mismatch(mariadb, tenant, served, tmp_path):
    """`st run --checks all` in both generation modes (valid and invalid data), the examples and
    fuzzing phases, bounded examples: no 5xx and no disagreement with the document. (The coverage
    phase passes too but takes minutes: `st run ... --phases coverage` by hand.)"""
    command = [str(Path(sys.executable).with_name("st")), "run", f"{served}/openapi.json",
               "--checks", "all", "--mode", "all", "--phases", "examples,fuzzing",
               "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1",
               "--generation-deterministic", "--no-shrink", "--workers", "2",
               "--request-timeout", "30", "--max-response-time", "20",
               "-H", f"Authorization: Bearer {tenant.api_key}", "--no-color"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(run.stdout + run.stderr)
    assert run.returncode == 0, f"see {OUTPUT}\n" + run.stdout[-6000:] + run.stderr[-2000:]
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", run.stdout).groups())
    assert generated >= MIN_CASES and passed == generated, run.stdout[-3000:]
