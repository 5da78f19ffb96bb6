"""Client configuration: flags > environment > config file > defaults.

Why a pure function: ``resolve_settings(flags, environ, config_path)`` reads nothing but its
arguments and the one file it is given, so every precedence rule is testable with dicts.
The CLI passes ``os.environ`` and ``find_config_file(Path.cwd())`` (or ``--config FILE``).

Invariants:
* The API token comes from a flag or the environment, never from the config file: a file is
  committed, copied and shared, a token must not be. A token-like key in the file is refused
  with a ConfigError naming file and line. ``token_env: NAME`` in the file names the
  environment variable that holds the token instead.
* The token is a ``SecretStr`` from the moment it is read; ``repr(settings)`` masks it.
* Every problem is a ``ConfigError`` that names its source (flag, variable, or file:line).

The file's ``budget:`` (the most one plan may trigger) is not a client setting:
``resolve_budget`` reads it, with the flags over it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.errors import ConfigError
from reconciler.plan import Budget

DEFAULT_API_URL = "https://api-platform.vntana.com"
# The web app's own origin: download-model.md sends an ``Origin`` with the sign-url call, and
# ``MISSING_ORIGIN`` is a documented refusal (Y:18171). Any origin the platform accepts will do.
DEFAULT_ORIGIN = "https://platform.vntana.com"
DEFAULT_CONFIG_NAME = "reconciler.yaml"
TOKEN_ENV = "VNTANA_API_TOKEN"

DownloadRoute = Literal["auto", "comments", "signed-url"]
WebhookPaths = Literal["auto", "guide", "yaml"]

# setting -> environment variable
ENV_VARS = {
    "api_url": "VNTANA_API_URL",
    "token": TOKEN_ENV,
    "organization_uuid": "VNTANA_ORGANIZATION_UUID",
    "client_uuid": "VNTANA_CLIENT_UUID",
    "download_route": "VNTANA_DOWNLOAD_ROUTE",
    "origin": "VNTANA_ORIGIN",
    "webhook_paths": "VNTANA_WEBHOOK_PATHS",
}
# Keys the config file may set; any other key is an error (a typo must not pass silently).
FILE_KEYS = (
    "api_url",
    "organization_uuid",
    "client_uuid",
    "timeout",
    "max_attempts",
    "max_elapsed",
    "max_concurrency",
    "requests_per_second",
    "download_route",
    "origin",
    "webhook_paths",
)
# Keys of the config file that are not client settings: read by ``configured_downloads``.
PROJECT_KEYS = ("downloads", "budget")
BUDGET_KEYS = ("max_frames", "max_requests", "max_video_seconds")
"""The limits of ``budget:`` and of the flags of the same names (``--max-frames``, ...)."""
_TOKEN_LIKE_KEYS = {"token", "api_token", "access_token", "personal_access_token", "vntana_api_token"}


class ClientSettings(BaseModel):
    """Everything ``VntanaClient`` needs to reach and log in to the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str = DEFAULT_API_URL
    token: SecretStr
    organization_uuid: str | None = None
    client_uuid: str | None = None
    """The workspace ("client" in the API); when set, the login adds the workspace step."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds for connect and for each read/write of one request."""
    max_attempts: int = Field(default=8, ge=1)
    max_elapsed: float = Field(default=120.0, gt=0)
    """Seconds after which a failing call stops being retried."""
    max_concurrency: int = Field(default=8, ge=1)
    """API requests in flight at once, over all threads (downloads not counted)."""
    requests_per_second: float | None = Field(default=None, gt=0)
    download_route: DownloadRoute = "auto"
    """How renders are downloaded. VNTANA documents two routes: ``comments`` is
    ``GET /v1/comments/images/{blobId}?clientUuid=`` (upload-attachments.md, VNTANA's own
    client); ``signed-url`` is ``POST /v1/storage/download/clients/sign-url`` then a GET of the
    signed location (download-model.md). ``auto`` tries them in that order and keeps, for the
    run, the first that works (``reconciler doctor --save`` records the one found)."""
    origin: str = DEFAULT_ORIGIN
    """The ``Origin`` header sent with sign-url calls."""
    webhook_paths: WebhookPaths = "auto"
    """Spelling of the webhook routes: ``guide`` (webhooks.md: ``POST /v1/webhooks``,
    ``/organizations/{org}``), ``yaml`` (the OpenAPI: ``POST /v1/webhooks/``,
    ``/organization/{org}``), or ``auto``: the guide's first, the other on a 404."""

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "/" in value.split("://", 1)[1].rstrip("/"):
            raise ValueError("must be an origin such as https://platform.vntana.com (scheme and host only)")
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value


def find_config_file(directory: Path) -> Path | None:
    """``directory/reconciler.yaml`` if it exists (the default when no --config is given)."""
    candidate = directory / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def resolve_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_path: Path | None = None
) -> ClientSettings:
    """Merge flags, environment, config file and defaults into ``ClientSettings``.

    ``flags`` maps setting names to values; ``None`` means "not given". Raises ConfigError
    for a missing token, an unreadable or invalid config file, or an invalid value.
    """
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    token_env: str | None = None

    if config_path is not None:
        file_values, lines, token_env = _read_config(config_path)
        for key, value in file_values.items():
            if key in PROJECT_KEYS:
                continue
            values[key] = value
            origin[key] = f"{config_path}:{lines[key]}"

    for key, var in ENV_VARS.items():
        if environ.get(var, "").strip():
            values[key] = environ[var].strip()
            origin[key] = f"environment variable {var}"
    if "token" not in values and token_env and environ.get(token_env, "").strip():
        values["token"] = environ[token_env].strip()
        origin["token"] = f"environment variable {token_env}"

    for key, value in flags.items():
        if value is not None:
            values[key] = value
            origin[key] = f"flag --{key.replace('_', '-')}"

    if "token" not in values:
        where = f" (or {token_env}, named by token_env in {config_path})" if token_env else ""
        raise ConfigError(
            f"no VNTANA API token: set the environment variable {TOKEN_ENV}{where}",
            hint=f"export {TOKEN_ENV}=<your Authentication Key> (the personal access token made in the VNTANA "
            "platform; never put it in a file), or add --sandbox to work against the embedded sandbox",
        )
    try:
        return ClientSettings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "?"
            source = origin.get(key, "settings")
            problems.append(f"{source}: {key}: {err['msg']}")
        raise ConfigError("invalid client settings:\n" + "\n".join(problems)) from None


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, int], str | None]:
    """The client keys of a YAML config file, with their 1-based line numbers, and token_env."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}, {}, None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}:1: the config file must be a mapping of settings")

    def line_of(key: Any) -> int:
        try:
            return int(cast(Any, data).lc.key(key)[0]) + 1  # ruamel's line info, when it has one
        except (AttributeError, KeyError, TypeError):
            return 1

    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    token_env: str | None = None
    for key, value in data.items():
        name = str(key)
        if name.lower() in _TOKEN_LIKE_KEYS:
            raise ConfigError(
                f"{path}:{line_of(key)}: '{name}': the API token must not be stored in the config file",
                hint=f"remove it and set the environment variable {TOKEN_ENV} "
                "(or 'token_env: NAME' to read it from another variable)",
            )
        if name == "token_env":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{path}:{line_of(key)}: token_env must be the name of an environment variable"
                )
            token_env = value.strip()
        elif name in FILE_KEYS or name in PROJECT_KEYS:
            values[name] = _plain(value)
            lines[name] = line_of(key)
        else:
            known = (*FILE_KEYS, *PROJECT_KEYS, "token_env")
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            raise ConfigError(
                f"{path}:{line_of(key)}: unknown setting '{name}'",
                hint=f"did you mean '{close[0]}'?" if close else "known settings: " + ", ".join(known),
            )
    return values, lines, token_env


def configured_downloads(config_path: Path | None) -> Path | None:
    """``downloads: DIR`` of the config file (where apply keeps files; relative to the file's
    folder), or None when unset. ConfigError naming file:line for a value that is not a path."""
    if config_path is None:
        return None
    values, lines, _ = _read_config(config_path)
    value = values.get("downloads")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{config_path}:{lines['downloads']}: downloads must be a folder path, e.g. 'downloads'"
        )
    return config_path.parent / value.strip()


def resolve_budget(flags: Mapping[str, Any], config_path: Path | None) -> Budget:
    """The budget: each limit from its flag (``flags[key]`` not None), else from ``budget:`` in
    the config file, else none. Every limit records where it was set."""
    limits, sources = configured_budget(config_path)
    for key in BUDGET_KEYS:
        value = flags.get(key)
        if value is not None:
            limits[key] = value
            sources[key] = "--" + key.replace("_", "-")
    return Budget(**limits, sources=sources)


def configured_budget(config_path: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``budget:`` of the config file: its limits, and where each is (``file:line``).
    ConfigError naming file:line for a value that is not a limit, or an unknown key."""
    if config_path is None:
        return {}, {}
    values, lines, _ = _read_config(config_path)
    block = values.get("budget")
    if block is None:
        return {}, {}
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"{config_path}:{lines['budget']}: budget must be a mapping of limits",
            hint="for example: budget: {max_frames: 100000, max_requests: 500, max_video_seconds: 3600}",
        )
    limits: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, raw in block.items():
        try:
            line = int(block.lc.key(key)[0]) + 1  # type: ignore[attr-defined]
        except (AttributeError, KeyError, TypeError):
            line = lines["budget"]
        where = f"{config_path}:{line}"
        name = str(key)
        if name not in BUDGET_KEYS:
            close = difflib.get_close_matches(name, BUDGET_KEYS, n=1, cutoff=0.6)
            raise ConfigError(
                f"{where}: unknown budget limit '{name}'",
                hint=f"did you mean '{close[0]}'?" if close else "limits: " + ", ".join(BUDGET_KEYS),
            )
        value = _plain(raw)
        if value is None:  # written but empty: no limit
            continue
        whole = name != "max_video_seconds"
        number = isinstance(value, int) or (isinstance(value, float) and not whole)
        if isinstance(value, bool) or not number or not math.isfinite(value) or value < 0:
            what = "a whole number" if whole else "a number of seconds"
            raise ConfigError(f"{where}: budget.{name} must be {what}, at least 0, got {value!r}")
        limits[name] = value
        sources[name] = f"budget.{name} in {where}"
    return limits, sources


def _plain(value: Any) -> Any:
    """ruamel's scalar subclasses → plain Python values, so pydantic validates them strictly."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


SAVED_KEYS = ("organization_uuid", "client_uuid", "download_route", "webhook_paths", "origin")
"""What ``reconciler doctor --save`` may write (never the token)."""


def save_settings(path: Path, values: Mapping[str, Any]) -> list[str]:
    """Write ``values`` into the config file at ``path``, keeping its comments and other keys.

    Only keys of ``SAVED_KEYS`` are accepted (a token can never be written). Creates the file
    if needed; returns the keys whose value changed. Raises ConfigError naming the file.
    """
    bad = sorted(set(values) - set(SAVED_KEYS))
    if bad:
        raise ConfigError(f"refusing to save {', '.join(bad)} to {path}")
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    data: Any = None
    if path.exists():
        _read_config(path)  # the same checks as when it is used: a broken file is not rewritten
        try:
            data = yaml.load(path.read_text(encoding="utf-8"))
        except (OSError, YAMLError) as exc:  # pragma: no cover - _read_config reported it already
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if data is None:
        data = CommentedMap()
    changed = []
    for key, value in values.items():
        if value is None or data.get(key) == value:
            continue
        data[key] = value
        changed.append(key)
    if not changed:
        return []
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            yaml.dump(data, out)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write config file {path}: {exc.strerror or exc}") from exc
    return changed
