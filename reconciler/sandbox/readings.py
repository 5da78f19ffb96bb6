"""Readings: where VNTANA's own documents contradict each other, the sandbox offers each as a switch.

The contract between the sandbox and the client (``/work/brief/readings.md``) names the switches,
their values and their defaults; ``docs/sandbox.md`` gives the sources of each. The default of
every switch is what VNTANA's guides and VNTANA's own published client show; the other values
are the other documented readings. A client that works against the real API must work under
every combination, so the e2e matrix runs ``MATRIX``: the defaults, each non-default value on
its own, and a "hostile" profile with every switch away from its default.

``Readings`` is an immutable value. Values are normalised on construction (``"401"`` and ``401``
are one value, ``"true"`` and ``True`` are one value), so readings parsed from a command line
compare equal to readings written in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

# switch -> its values, the default first.
CHOICES: dict[str, tuple[Any, ...]] = {
    "entity_type_filter": ("ignored", "honoured"),
    "revoked_token_status": (403, 401),
    "download": ("both", "comments", "signed-url", "signed-url-origin"),
    "webhook_paths": ("guide", "yaml"),
    "webhook_clients": ("slugs", "uuids"),
    "timestamps": ("zoneless", "utc"),
    "error_entries": ("strings", "objects"),
    "throttle_status": (429, 403, 400, 409),
    "manual_renders_replaced": (False, True),
    # Added by the sandbox (not in the lead's table): webhooks.md signs the raw body in its Python
    # example and a re-serialised body in its Node example. ``compact`` bodies verify both ways;
    # ``spaced`` bodies verify only over the raw bytes.
    "webhook_body": ("compact", "spaced"),
}

# The non-default value each switch takes in the hostile profile (the hardest for a client).
HOSTILE_VALUES: dict[str, Any] = {
    "entity_type_filter": "honoured",
    "revoked_token_status": 401,
    "download": "signed-url-origin",
    "webhook_paths": "yaml",
    "webhook_clients": "uuids",
    "timestamps": "utc",
    "error_entries": "objects",
    "throttle_status": 403,
    "manual_renders_replaced": True,
    "webhook_body": "spaced",
}

_INT_SWITCHES = {"revoked_token_status", "throttle_status"}
_BOOL_SWITCHES = {"manual_renders_replaced"}
_BOOLS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
    "on": True,
    "off": False,
}


def _normalise(name: str, value: Any) -> Any:
    allowed = CHOICES[name]
    given = value
    if name in _INT_SWITCHES and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    elif name in _BOOL_SWITCHES and isinstance(value, str) and value.strip().lower() in _BOOLS:
        value = _BOOLS[value.strip().lower()]
    elif isinstance(value, str):
        value = value.strip()
    if isinstance(value, bool) and name not in _BOOL_SWITCHES:
        value = None  # True == 1 in Python: never let a bool pass for a status
    if value not in allowed or type(value) is not type(allowed[0]):
        shown = ", ".join(_show(v) for v in allowed)
        raise ValueError(
            f"reading {name} cannot be {given!r}; choose one of: {shown} (default {_show(allowed[0])})"
        )
    return value


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclasses.dataclass(frozen=True)
class Readings:
    """One reading per documented contradiction; the defaults follow the guides and VNTANA's client."""

    entity_type_filter: str = "ignored"  # POST /v1/attachments/search ignores or honours ``entityType``
    revoked_token_status: int = 403  # status of a call with a bad, expired, revoked or logged-out token
    download: str = "both"  # which routes download renders (see docs/sandbox.md)
    webhook_paths: str = "guide"  # the guide's spelling of the webhook routes, or the YAML's
    webhook_clients: str = "slugs"  # what ``clients`` of a webhook holds: workspace slugs or uuids
    timestamps: str = "zoneless"  # ``2023-08-28T19:03:53.198`` (UTC, no zone) or ``...Z``
    error_entries: str = "strings"  # ``"PRODUCT_NOT_FOUND"`` or ``{"code": ..., "message": ...}``
    throttle_status: int = 429  # how the ``rate_429`` fault answers
    manual_renders_replaced: bool = False  # a new render also removes hand uploads of the Renders tab
    webhook_body: str = "compact"  # webhook bodies without spaces (verify raw or re-serialised) or spaced

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _normalise(field.name, getattr(self, field.name)))

    # -- building -------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Readings:
        """From a config file's ``readings:`` mapping; unknown switches are an error."""
        unknown = sorted(set(data) - set(CHOICES))
        if unknown:
            raise ValueError(f"unknown reading(s): {', '.join(unknown)} (known: {', '.join(CHOICES)})")
        return cls(**dict(data))

    @classmethod
    def parse(cls, assignments: Iterable[str], base: Readings | None = None) -> Readings:
        """``NAME=VALUE`` strings (``reconciler sandbox --reading``) applied over ``base``."""
        changes: dict[str, Any] = {}
        for item in assignments:
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or not name:
                raise ValueError(f"--reading {item!r}: expected NAME=VALUE, e.g. entity_type_filter=honoured")
            if name not in CHOICES:
                raise ValueError(
                    f"--reading {item!r}: unknown reading {name!r} (known: {', '.join(CHOICES)})"
                )
            changes[name] = value
        return dataclasses.replace(base or cls(), **changes)

    def replace(self, **changes: Any) -> Readings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def hostile(cls) -> Readings:
        """Every switch away from its default."""
        return cls(**HOSTILE_VALUES)

    @classmethod
    def all_combinations(cls) -> list[Readings]:
        """The combinations the e2e matrix runs (``MATRIX``): not the full cross product."""
        return list(MATRIX)

    # -- describing -----------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_defaults(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items() if v != CHOICES[k][0]}

    @property
    def label(self) -> str:
        """A short name for test ids and banners: ``default``, ``hostile`` or ``a=b,c=d``."""
        changed = self.non_defaults()
        if not changed:
            return "default"
        if self == Readings.hostile():
            return "hostile"
        return ",".join(f"{k}={_show(v)}" for k, v in changed.items())

    def __str__(self) -> str:
        return self.label

    # -- behaviour helpers the routes share -------------------------------------
    def time(self, ts: float, *, precision: str = "milliseconds") -> str:
        """A ``created``/``updated`` value: ISO 8601 in UTC, zone-less or with ``Z``."""
        text = datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None).isoformat(timespec=precision)
        return text if self.timestamps == "zoneless" else text + "Z"

    @property
    def comments_route(self) -> bool:
        """``GET /v1/comments/images/{blobId}`` serves renders."""
        return self.download in ("both", "comments")

    @property
    def sign_url_for_renders(self) -> bool:
        """``POST /v1/storage/download/clients/sign-url`` serves RENDER and TURNTABLE."""
        return self.download != "comments"

    @property
    def sign_url_needs_origin(self) -> bool:
        return self.download in ("both", "signed-url-origin")


def _matrix() -> tuple[Readings, ...]:
    default = Readings()
    combos = [default]
    for name, values in CHOICES.items():
        combos.extend(default.replace(**{name: value}) for value in values[1:])
    combos.append(Readings.hostile())
    return tuple(combos)


DEFAULT = Readings()
HOSTILE = Readings.hostile()
# The defaults, every non-default value of one switch at a time, and the hostile profile.
MATRIX: tuple[Readings, ...] = _matrix()
