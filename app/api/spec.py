"""How a view declares itself: `@api.route(...)` names its query, body and response models.

The decorator checks the API key, parses and validates the request with those models, turns
the view's result into JSON, and records the operation, so /openapi.json is generated from
the very models that validate requests.
"""
from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Blueprint, Response, current_app, g, jsonify, request, session
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from app import crypto
from app.api.body import HttpError, check_strings, parse_json, read_body
from app.api.schemas import PATTERN_MESSAGES, UNION_TAGS, ErrorBody
from app.errors import InvalidInput, NotFound, Unauthorized
from app.services.accounts import company_for_key_hash, hash_key, key_company

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
NO_NUL = r"^[^\x00]*$"
# Idempotency-Key: what idempotency.check_key takes (printable) as HTTP carries it (Latin-1,
# no spaces at either end).
PRINTABLE_HEADER = r"^[^\s\x00-\x1f\x7f-\xa0\xad](?:[^\x00-\x1f\x7f-\xa0\xad]*[^\s\x00-\x1f\x7f-\xa0\xad])?$"


@dataclass
class Operation:
    method: str
    rule: str
    summary: str
    tag: str
    status: int
    response: type[BaseModel] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    auth: bool
    headers: dict[str, str] = field(default_factory=dict)  # request header -> description
    conflicts: str | None = None  # when the operation answers 409, if it can
    # A path parameter that is not an id: its values (the others are UUIDs).
    path_values: dict[str, list[str]] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)  # other successes, same body
    # The API key may be absent (a browser coming back from a platform): then the view gets
    # company_id None and may answer with a redirect, described here.
    optional_auth: str | None = None
    errors: dict[int, str] = field(default_factory=dict)  # more error answers, with when
    # A body that is not JSON (a file upload): its OpenAPI `content` map; the view reads it.
    upload: dict | None = None
    upload_limit: str | None = None  # the setting bounding the upload's size

    @property
    def path(self) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.rule)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.rule)


class Api:
    """A blueprint whose every route declares its models."""

    def __init__(self, name: str, tag: str):
        self.blueprint = Blueprint(name, __name__)
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, rule: str, *, summary: str, response: type[BaseModel] | None,
              status: int = 200, body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, auth: bool = True,
              headers: dict[str, str] | None = None, conflicts: str | None = None,
              one_session: bool = False, path_values: dict[str, list[str]] | None = None,
              statuses: dict[int, str] | None = None, optional_auth: str | None = None,
              errors: dict[int, str] | None = None, upload: dict | None = None,
              upload_limit: str | None = None) -> Callable:
        """`one_session`: the key is checked in a database session that the view then gets as
        `db` and commits in (one connection and one transaction a request, for the hot path);
        it is closed, rolled back unless committed, when the view returns or raises."""
        operation = Operation(method, rule, summary, self.tag, status, response, body, query, auth,
                              headers or {}, conflicts, path_values or {}, statuses or {},
                              optional_auth, errors or {}, upload, upload_limit)
        self.operations.append(operation)

        def decorate(view: Callable) -> Callable:
            def run(path_args: dict, db: Session | None):
                kwargs = dict(path_args)
                _check_ids({k: v for k, v in path_args.items() if k not in operation.path_values})
                if auth and optional_auth and not request.headers.get("Authorization"):
                    kwargs["company_id"] = None
                elif auth:
                    kwargs["company_id"] = g.company_id = authenticate(db)
                if query is not None:
                    kwargs["query"] = _validated(query, _query_args())
                if body is not None:
                    kwargs["body"] = _validated(body, json_body())
                for parsed in (kwargs.get("query"), kwargs.get("body")):
                    _check_company(parsed, kwargs.get("company_id"))
                if db is not None:
                    kwargs["db"] = db
                return _respond(view(**kwargs), status)

            @functools.wraps(view)
            def handle(**path_args):
                if not one_session:
                    return run(path_args, None)
                with sessions()() as db:
                    return run(path_args, db)

            self.blueprint.add_url_rule(rule, view.__name__, handle, methods=[method])
            return view

        return decorate


# -- requests -------------------------------------------------------------------------------

def sessions():
    return current_app.extensions["scheduler"]["sessions"]


def keys() -> crypto.KeyRing:
    """The key ring of the app's settings, for the services that seal a secret."""
    return crypto.KeyRing.of(current_app.extensions["scheduler"]["settings"])


def authenticate(db: Session | None = None) -> str:
    """The company of the request's API key (`Authorization: Bearer <key>`), or of the
    dashboard's session cookie when the request also carries the session's CSRF token.
    The key is looked up in `db` when given, else in a session of its own."""
    header = request.headers.get("Authorization", "")
    if not header and "key_hash" in session:
        return session_company(require_csrf=True, db=db)
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the API key as `Authorization: Bearer <key>` "
                           "(`scheduler apikey create` makes one)")
    company_id = _key_company(hash_key(key.strip()), db)
    if company_id is None:
        raise Unauthorized("this API key is unknown or revoked")
    return company_id


def session_company(require_csrf: bool = False, db: Session | None = None) -> str:
    """The company of the dashboard session; its key is checked again on every request, so
    revoking the key ends the session too."""
    if require_csrf and request.headers.get("X-CSRF-Token") != session.get("csrf"):
        raise Unauthorized("the dashboard session needs its X-CSRF-Token header")
    company_id = _key_company(session.get("key_hash", ""), db)
    if company_id is None:
        session.clear()
        raise Unauthorized("this session's API key is unknown or revoked: sign in again")
    return company_id


def _key_company(key_hash: str, db: Session | None) -> str | None:
    return key_company(db, key_hash) if db is not None else company_for_key_hash(sessions(), key_hash)


def json_body() -> dict:
    if request.mimetype != "application/json":
        raise HttpError(415, "unsupported_media_type",
                        "send the body as JSON with `Content-Type: application/json`")
    data = parse_json(read_body())
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", fields={"body": "must be an object"})
    check_strings(data)
    return data


def _check_ids(path_args: dict[str, str]) -> None:
    """Ids in paths are UUIDs; anything else names nothing that exists."""
    for name, value in path_args.items():
        try:
            uuid.UUID(value)
        except ValueError:
            raise NotFound(f"no {name.removesuffix('_id')} {value!r}: ids are UUIDs") from None


def _query_args() -> dict[str, str]:
    repeated = [k for k, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise InvalidInput(f"give each query parameter once: {', '.join(repeated)}",
                           fields={k: "given more than once" for k in repeated})
    args = request.args.to_dict()
    check_strings(args)
    return args


def _validated(model: type[BaseModel], data: dict) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = {_field_name(e["loc"]): _explain(e) for e in exc.errors()}
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        raise InvalidInput(f"the request is not valid: {summary}", fields=fields) from None


def _field_name(loc: tuple) -> str:
    name = ""
    for part in loc:
        if part in UNION_TAGS:
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _explain(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(error["ctx"]["pattern"], "does not have the form "
                                    "/openapi.json gives for it")
    if error["type"] == "missing":
        return "required"
    return error["msg"].removeprefix("Value error, ")


def _check_company(parsed: BaseModel | None, company_id: str | None) -> None:
    """A `companyId` in a request must be the key's own company; any other is not found."""
    given = getattr(parsed, "companyId", None)
    if given is not None and str(given) != company_id:
        raise NotFound(f"no company {given} for this API key")


def _respond(result, status: int) -> Response:
    if isinstance(result, Response):  # a redirect, for a browser
        return result
    headers = {}
    if isinstance(result, tuple):
        result, status, headers = (*result, {})[:3]
    payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    response = jsonify(payload)
    response.status_code = status
    response.headers.update(headers)
    return response


# -- the document ---------------------------------------------------------------------------

class DocumentSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema, plus what the server enforces on every string before the models
    see it (body.check_strings): no NUL character."""

    def str_schema(self, schema):
        out = super().str_schema(schema)
        out.setdefault("pattern", NO_NUL)
        return out


def openapi_document(operations: list[Operation], title: str, version: str) -> dict:
    """OpenAPI 3.1 from the operations' pydantic models."""
    bodies = {op.body for op in operations if op.body is not None}
    modes: dict[type[BaseModel], JsonSchemaMode] = {m: "validation" for m in bodies}
    modes |= {op.response: "serialization" for op in operations if op.response is not None}
    modes[ErrorBody] = "serialization"
    keys, top = models_json_schema(sorted(modes.items(), key=lambda item: item[0].__name__),
                                   ref_template=REF, schema_generator=DocumentSchema)
    components = dict(top.get("$defs", {}))
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(
            op, lambda model: keys[(model, modes[model])], components)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version,
                 "description": "Schedule posts to X, Facebook Pages, Instagram and LinkedIn."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "An API key from `scheduler company create` "
                                          "or `scheduler apikey create`"}}},
    }


def _operation(op: Operation, ref: Callable[[type[BaseModel]], dict], components: dict) -> dict:
    def json_of(model: type[BaseModel]) -> dict:
        return {"application/json": {"schema": ref(model)}}

    ok: dict[str, Any] = {"description": "OK"}
    if op.response is not None:
        ok["content"] = json_of(op.response)
    others = {str(status): {**ok, "description": why} for status, why in op.statuses.items()}
    if op.optional_auth:
        others["302"] = {"description": op.optional_auth}
    spec: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}{_camel(op.path)}",
            "tags": [op.tag],
            "responses": {str(op.status): ok, **others, **{
                str(status): {"description": why, "content": json_of(ErrorBody)}
                for status, why in _errors(op).items()},
                "default": {"description": "An unexpected error (5xx: the database is "
                                           "unavailable, or a bug)", "content": json_of(ErrorBody)}},
            "security": ([{"bearerAuth": []}, {}] if op.optional_auth else [{"bearerAuth": []}])
            if op.auth else []}
    params: list[dict[str, Any]] = [{"name": p, "in": "path", "required": True,
               "schema": {"type": "string", "enum": op.path_values[p]} if p in op.path_values
               else {"type": "string", "format": "uuid"}} for p in op.path_params]
    params += [{"name": name, "in": "header", "required": False, "description": text,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                           "pattern": PRINTABLE_HEADER}}
               for name, text in op.headers.items()]
    if op.query is not None:
        params += _query_params(op.query, components)
    if params:
        spec["parameters"] = params
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": json_of(op.body)}
    if op.upload is not None:
        spec["requestBody"] = {"required": True, "content": op.upload}
    return spec


def _errors(op: Operation) -> dict[int, str]:
    """The client errors an operation can answer, each with when."""
    errors: dict[int, str] = {}
    if op.body is not None:
        errors[400] = "The body is not JSON (malformed_json) or nests too deep (too_deep)"
    if op.auth:
        errors[401] = "No API key, or one that is unknown or revoked"
    if op.auth or op.path_params:
        errors[404] = "Not found for this API key's company (a companyId not the key's own, an id)"
    if op.conflicts:
        errors[409] = op.conflicts
    if op.body is not None:
        errors[413] = "The body is larger than SCHEDULER_MAX_BODY_BYTES"
        errors[415] = "The body is not sent as application/json"
    if op.upload is not None:
        if "multipart/form-data" in op.upload:
            errors[400] = "The multipart body is malformed"
        errors[413] = f"The body is larger than {op.upload_limit} (refused as it streams)"
        errors[415] = f"The body is not sent as {' or '.join(op.upload)}"
    if op.body is not None or op.query is not None or op.headers or op.upload is not None:
        errors[422] = "A field is not valid: `fields` names each one and says why"
    return errors | op.errors


def _query_params(model: type[BaseModel], components: dict) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF, mode="validation",
                                     schema_generator=DocumentSchema)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        # A query string cannot carry null: "absent" is how it says none.
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            prop.update(options[0])
        if prop.get("default", 0) is None:
            del prop["default"]
        description = prop.pop("description", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _camel(path: str) -> str:
    words = re.findall(r"[A-Za-z]+", path.replace("{", "by-"))
    return "".join(w.capitalize() for w in words)
