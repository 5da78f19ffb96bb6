"""Check a sandbox answer against VNTANA's OpenAPI document (``tests/contract/``).

Every answer an ``Api`` gets in these tests goes through ``check_answer``: its JSON is
validated against the schema the YAML documents for that path, method and status. Where
VNTANA's own documents disagree with the YAML, the documents win and the checker says so:

- ``date-time`` values may be zone-less (``2023-08-28T19:03:53.198``): the guides' examples
  (upload-attachments.md, organizations-clients.md) show no zone, the reading ``timestamps:
  zoneless``. Under ``timestamps: utc`` they must carry a zone (strict RFC 3339).
- An error answer's ``response`` is ``null`` (quick-reference/error-codes.md); the generator
  never marks fields nullable, so ``null`` is checked as absent.
- A code the YAML names as the description of that very response (``403: BAD_CREDENTIALS`` of
  the login and refresh operations) is accepted although its enum lacks it (Y:26592).
- Under ``error_entries: objects`` each entry must be ``{"code", "message"}``; its code is then
  checked against the enum as a string entry would be.
- The render trigger's ``response.errors`` is ``null`` when nothing was rejected (renders.md's
  example answer), checked as an empty map.
- The guide's spelling of the webhook routes (webhooks.md) is checked against the YAML
  operation it stands for.
- Answers that are files (the comments route, model and thumbnail downloads) are not JSON,
  whatever the generator wrote for them; their error answers are checked.
- The platform's own error codes (``FORBIDDEN``, ``UNAUTHORIZED``, ``API_RATE_LIMIT_EXCEEDED``,
  ``NOT_FOUND``... the enum the YAML repeats in ``LoginUserResultResponseForbidden`` and the
  storage schemas) may answer any operation: api-authentication.md's 403 ``FORBIDDEN`` for a
  missing, expired or revoked token, the wrong scope or a non-whitelisted IP, throttling under
  400/403/409. Where the operation's own schema lacks such a code, the answer is checked
  against that platform-wide schema instead.
"""

from __future__ import annotations

import copy
import functools
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from jsonschema import FormatChecker, ValidationError
from openapi_schema_validator import OAS30Validator
from ruamel.yaml import YAML

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "contract" / "vntana-admin-api-subset.yaml"
GUIDE_PATHS = {
    "/v1/webhooks": "/v1/webhooks/",
    "/v1/webhooks/events": "/v1/webhooks/events/",
    "/v1/webhooks/organizations/{organizationUuid}": "/v1/webhooks/organization/{organizationUuid}",
}
FILE_ROUTES = (
    "/v1/comments/images/{blobId}",
    "/v1/products/{productUuid}/download/model",
    "/v1/products/{productUuid}/clients/{clientUuid}/thumbnails/{thumbnailBlobId}",
)
_ZONED = re.compile(r".*(Z|[+-]\d\d:\d\d)$")


@functools.cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def _date_time(zoneless_allowed: bool) -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _ZONED.match(value) and not zoneless_allowed:
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


@functools.cache
def _validator(name: str, zoneless: bool, extra_codes: tuple[str, ...]) -> OAS30Validator:
    components = copy.deepcopy(spec()["components"])
    if extra_codes:
        items = components["schemas"][name].get("properties", {}).get("errors", {}).get("items", {})
        if "enum" in items:
            items["enum"] = [*items["enum"], *extra_codes]
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    return OAS30Validator(schema, format_checker=_date_time(zoneless))


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    paths = [*spec()["paths"], *GUIDE_PATHS]
    # literal segments first, so /v1/webhooks/events wins over /v1/webhooks/{uuid}
    ordered = sorted(paths, key=lambda p: (p.count("{"), -len(p)))
    return [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in ordered]


def documented_path(path: str) -> str | None:
    """The YAML path template a concrete request path belongs to (guide spellings mapped), or None."""
    for pattern, template in _templates():
        if pattern.match(path):
            return GUIDE_PATHS.get(template, template)
    return None


def schema_name(template: str, method: str, status: int) -> tuple[str | None, str]:
    """(schema name or None, the response's description) the YAML documents."""
    operation = spec()["paths"][template].get(method.lower())
    if operation is None:
        return None, ""
    answer = operation["responses"].get(str(status))
    if answer is None:
        return None, ""
    for content in (answer.get("content") or {}).values():
        ref = (content.get("schema") or {}).get("$ref")
        if ref:
            return ref.rsplit("/", 1)[1], str(answer.get("description") or "")
    return None, str(answer.get("description") or "")


def _codes_of(entries: Any, objects: bool) -> Any:
    if not isinstance(entries, list):
        return entries
    out = []
    for entry in entries:
        if objects:
            assert isinstance(entry, dict) and set(entry) == {"code", "message"}, entry
            assert (
                isinstance(entry["code"], str) and isinstance(entry["message"], str) and entry["message"]
            ), entry
            out.append(entry["code"])
        else:
            assert isinstance(entry, str), entry
            out.append(entry)
    return out


def check_answer(method: str, path: str, answer: httpx.Response, readings: Any) -> str | None:
    """Validate one answer; returns the schema name it was checked against (None: nothing documented)."""
    if not path.startswith("/v1/"):
        return None
    template = documented_path(path)
    if template is None:  # not an operation of the platform: 404 NOT_FOUND in the envelope
        body = answer.json()
        assert answer.status_code == 404 and set(body) == {"success", "errors", "response"}, (
            method,
            path,
            body,
        )
        assert _codes_of(body["errors"], readings.error_entries == "objects") == ["NOT_FOUND"], body
        return None
    ctype = answer.headers.get("content-type", "")
    if template in FILE_ROUTES and answer.status_code in (200, 206):
        assert "json" not in ctype, (method, path)
        return None
    body = answer.json()
    assert isinstance(body, dict) and set(body) == {"success", "errors", "response"}, (method, path, body)
    assert body["success"] is (200 <= answer.status_code < 300), (method, path, body)
    name, description = schema_name(template, method, answer.status_code)
    if name is None:
        # Undocumented status (or no schema): the envelope is all there is to check.
        if not body["success"]:
            _codes_of(body["errors"], readings.error_entries == "objects")
        return None
    instance = copy.deepcopy(body)
    objects = readings.error_entries == "objects"
    if isinstance(instance["errors"], list):
        instance["errors"] = _codes_of(instance["errors"], objects)
    if not body["success"] and instance["response"] is None:
        del instance["response"]
    response = instance.get("response")
    if isinstance(response, dict) and template in ("/v1/products/renders", "/v1/products/delete"):
        if response.get("errors") is None and template == "/v1/products/renders":
            response["errors"] = {}
        if objects and isinstance(response.get("errors"), dict):
            response["errors"] = {k: _codes_of([v], True)[0] for k, v in response["errors"].items()}
    extra = tuple(c for c in re.findall(r"[A-Z][A-Z_]{3,}", description))
    zoneless = readings.timestamps == "zoneless"
    try:
        _validator(name, zoneless, extra).validate(instance)
    except ValidationError:
        codes = instance.get("errors")
        if body["success"] or not isinstance(codes, list) or not set(codes) <= _platform_codes():
            raise
        name = PLATFORM_ERRORS
        _validator(name, zoneless, ()).validate(instance)
    return name


PLATFORM_ERRORS = "LoginUserResultResponseForbidden"


@functools.cache
def _platform_codes() -> frozenset[str]:
    return frozenset(
        spec()["components"]["schemas"][PLATFORM_ERRORS]["properties"]["errors"]["items"]["enum"]
    )
