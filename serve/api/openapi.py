"""The OpenAPI document as a generated client needs it: every error it can meet declared with the
body it really has, the headers every POST takes, and operation ids that read as names.

FastAPI declares only what a route says: a 422 as its own `HTTPValidationError` (`detail`, a list,
under application/json), which the service never sends, and no other error at all. A client
generated from that document could not parse a single error (openapi-python-client raised on a
422 problem document, returned nothing for a 409). `document` rewrites the generated document once:

- every error is `application/problem+json` with the shared `Problem` schema (`ValidationProblem`
  for 422), or GeoReport v2's error list under /open311 (serve/api/problems.py writes them);
- the errors any route can answer are added where they apply: 401 and 403 to every route that
  needs a key, 404 to every path naming something, 413/415 to every body, 422 to every input,
  503/507 to every change, 429 and 500 to all;
- a photo, a workbook or a CSV is declared as bytes, /metrics as text;
- every POST takes `Idempotency-Key` (serve/api/idempotency.py serves it on every POST) and says
  `Idempotent-Replayed` on a replay;
- a change made with the console's session cookie needs the session's `X-CSRF-Token` header
  (serve/api/deps.py refuses it with 403 otherwise): declared as a security scheme, `CSRFToken`,
  required together with the cookie on every change, so that a generated client knows to send it;
  the API-key alternatives of the same operation need none.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from serve.api.deps import CSRF_HEADER, session_cookie
from serve.api.idempotency import MAX_KEY_LENGTH, REPLAY_HEADER
from serve.api.schemas import GeoReportError, Problem, ValidationProblem

PROBLEM_TYPE = "application/problem+json"
REF = "#/components/schemas/{model}"
ERRORS = {
    "401": "no valid API key or session",
    "403": "the key lacks the scope (`required_scope`), the person's role does not allow it, "
    "or a session's change lacks X-CSRF-Token",
    "404": "nothing with that id, or nothing the caller may see",
    "413": "the body is over the upload limit (STREETORDER_MAX_UPLOAD_MB)",
    "415": "a body of a type or an encoding not taken",
    "422": "a field does not validate (`errors` names each) or does not fit the rules; nothing changed",
    "429": "too many requests from this key or address; Retry-After says when to send again",
    "500": "the service failed on this request; `incident` names its log line",
    "503": "the database stayed busy or the model's queue is full; nothing changed; Retry-After says when",
    "507": "the service cannot store anything now (a full disk); nothing changed",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
CHANGES = ("post", "put", "patch", "delete")
CSRF_SCHEME = "CSRFToken"
CSRF = {
    "type": "apiKey",
    "in": "header",
    "name": CSRF_HEADER,
    "description": "the session's CSRF token (`csrf_token` of POST /v1/sessions and of "
    "GET /v1/sessions/current), required with the session cookie on every change (POST, PUT, PATCH, "
    "DELETE): without it the change is refused with 403. Callers with an API key (Authorization: Bearer, "
    "X-API-Key) do not send it",
}


def operation_id(route: APIRoute) -> str:
    """The route's function name (`list_cases`), not FastAPI's `list_cases_v1_cases_get`: a
    generated client's method names. Routes whose function name says too little set their own."""
    return route.name


def document(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) the rewritten document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = described(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def described(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(model, "serialization") for model in (Problem, ValidationProblem, GeoReportError)], ref_template=REF
    )
    components.update(defs["$defs"])
    schema["components"].setdefault("securitySchemes", {})[CSRF_SCHEME] = CSRF
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            declare_errors(path, method, operation)
            declare_bodies(operation)
            if method == "post":
                declare_idempotency(operation)
            if method in CHANGES:
                declare_csrf(operation)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, which we never send
        components.pop(unused, None)
    return schema


def errors_of(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    """The error statuses the route declares, and those every route of its kind can answer."""
    codes = {code for code in operation.get("responses", {}) if code[0] in "45"}
    codes |= {"429", "500"}
    if operation.get("security"):
        codes |= {"401", "403"}
    if "{" in path:
        codes.add("404")
    if operation.get("parameters") or "requestBody" in operation:
        codes.add("422")
    if "requestBody" in operation:
        codes |= {"413", "415"}
    if method in CHANGES:
        codes |= {"503", "507"}
    return codes


def error_content(path: str, code: str) -> dict[str, Any]:
    if path.startswith("/open311/"):  # GeoReport v2's error list, in the format the path asks for
        georeport = {"type": "array", "items": {"$ref": REF.format(model="GeoReportError")}}
        return {"application/json": {"schema": georeport}, "text/xml": {"schema": {"type": "string"}}}
    model = "ValidationProblem" if code == "422" else "Problem"
    return {PROBLEM_TYPE: {"schema": {"$ref": REF.format(model=model)}}}


def declare_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for code in errors_of(path, method, operation):
        response = responses.setdefault(code, {"description": ERRORS.get(code, "refused")})
        content = response.get("content")
        if content and "HTTPValidationError" not in json.dumps(content):
            continue  # a body of its own (/readyz's 503 is its health)
        response["content"] = error_content(path, code)
        if code in ("429", "503"):
            response.setdefault("headers", {}).update(RETRY_AFTER)
    operation["responses"] = dict(sorted(responses.items()))


def declare_bodies(operation: dict[str, Any]) -> None:
    """A photo, a workbook or a CSV answered without a schema is bytes (text for text/*), so that
    generators that type by schema give a client bytes, not nothing."""
    for code, response in operation["responses"].items():
        for media_type, content in response.get("content", {}).items():
            if code.startswith("2") and "schema" not in content:
                text = media_type.startswith("text/")
                content["schema"] = {"type": "string"} if text else {"type": "string", "format": "binary"}


def declare_csrf(operation: dict[str, Any]) -> None:
    """A change that takes the session cookie takes it only with the X-CSRF-Token header: the two
    in one requirement (both needed), the API-key requirements left as they are."""
    for requirement in operation.get("security", []):
        if session_cookie.scheme_name in requirement:
            requirement[CSRF_SCHEME] = []


def declare_idempotency(operation: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("in") == "header" and p["name"].lower() == "idempotency-key" for p in parameters):
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "a retry with the same key replays the first answer and changes nothing",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            }
        )
    for code, response in operation["responses"].items():
        if code.startswith("2"):
            replayed = {"description": "true on a replay of an Idempotency-Key's first answer"}
            response.setdefault("headers", {})[REPLAY_HEADER] = {**replayed, "schema": {"type": "string"}}
