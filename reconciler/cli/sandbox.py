"""``reconciler sandbox``: serve the local VNTANA platform until Ctrl-C.

Settings come from flags, then ``--config FILE`` (YAML or JSON, the fields of
``SandboxConfig`` with nested ``faults`` and ``readings`` mappings), then the defaults.
``--reading NAME=VALUE`` (repeatable) picks a reading of a documented contradiction. The
command prints the URL, the demo credentials, the other seed users, the default organization
and workspace and the readings away from their defaults, then serves. A token given with
``--access-token`` is never echoed back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.errors import ReconcilerError
from reconciler.sandbox.config import DEFAULT_ACCESS_TOKEN, SandboxConfig, load_mapping
from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.readings import CHOICES, Readings
from reconciler.sandbox.server import EmbeddedSandbox, serve

# flag name -> FaultConfig field; every fault is off unless a flag or the config file sets it
_FAULT_FLAGS = {
    "rate_429": "rate_429",
    "retry_after": "retry_after_seconds",
    "rate_500": "rate_500",
    "rate_503": "rate_503",
    "latency": "latency_seconds",
    "job_failure_rate": "job_failure_rate",
    "signed_url_ttl": "signed_url_ttl_override",
    "webhook_drop_rate": "webhook_drop_rate",
    "webhook_duplicate_rate": "webhook_duplicate_rate",
    "fault_seed": "seed",
}
_RATE = click.FloatRange(0.0, 1.0)


def build_config(options: dict[str, Any]) -> SandboxConfig:
    """Merge flags over the config file over the defaults; ValueError on bad values."""
    file_data: dict[str, Any] = load_mapping(options["config"]) if options.get("config") else {}
    faults = dict(file_data.pop("faults", None) or {})
    readings = Readings.from_mapping(file_data.pop("readings", None) or {})
    readings = Readings.parse(options.get("reading") or (), base=readings)
    for flag, field in _FAULT_FLAGS.items():
        if options.get(flag) is not None:
            faults[field] = options[flag]
    if options.get("fail_product"):
        faults["fail_products"] = sorted(set(faults.get("fail_products", [])) | set(options["fail_product"]))
    direct = {
        "access_token": options.get("access_token"),
        "seed": options.get("seed"),
        "job_pending_seconds": options.get("job_pending_seconds"),
        "job_processing_seconds": options.get("job_processing_seconds"),
        "workers": options.get("workers"),
        "auto_create_products": True if options.get("auto_create_products") else None,
        "storage_listener": False if options.get("storage_on_api_port") else None,
        "storage_port": options.get("storage_port"),
    }
    return SandboxConfig.from_mapping(
        {**file_data, "faults": FaultConfig.from_mapping(faults), "readings": readings}, **direct
    )


def _announce(sandbox: EmbeddedSandbox, custom_token: bool) -> None:
    token = "(the one given with --access-token)" if custom_token else DEFAULT_ACCESS_TOKEN
    lines = [
        f"VNTANA sandbox listening on {sandbox.url}",
        f"  data directory:        {sandbox.data_dir}",
        f"  storage (signed URLs): {sandbox.storage_url}",
        f"  personal access token: {token}",
        f"  login:                 {sandbox.user['email']} / {sandbox.user['password']}",
        f"  organization uuid:     {sandbox.organization_uuid}",
        f"  workspace (client):    {sandbox.client_uuid}",
    ]
    others = sandbox.users.users[1:]
    if others:
        lines.append("  other users (role, personal access token):")
        lines.extend(f"    {u.email:<32} {u.role:<37} {u.access_token}" for u in others)
    label = sandbox.readings.label
    lines.append(f"  readings:              {'the defaults' if label == 'default' else label}")
    faults, defaults = sandbox.faults.config, FaultConfig()
    active = [f"{k}={v}" for k, v in vars(faults).items() if v != getattr(defaults, k)]
    if active:
        lines.append(f"  faults:                {', '.join(sorted(active))}")
    lines.append("Press Ctrl-C to stop.")
    click.echo("\n".join(lines))


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8040, show_default=True, type=click.IntRange(0, 65535), help="Port (0 = any free port)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".sandbox"),
    show_default=True,
    help="Where products, jobs, tokens, webhooks and files persist.",
)
@click.option("--access-token", help="Personal access token to accept (default: the documented demo token).")
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Seed file (JSON/YAML) of organizations, workspaces and products; default: the packaged seed.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or JSON file with timing and fault options (flags win over it).",
)
@click.option(
    "--job-pending-seconds", type=click.FloatRange(0), help="Time a job stays pending.  [default: 0.2]"
)
@click.option(
    "--job-processing-seconds", type=click.FloatRange(0), help="Minimum processing time.  [default: 0.5]"
)
@click.option("--workers", type=click.IntRange(1), help="Render worker threads.  [default: 2]")
@click.option(
    "--auto-create-products", is_flag=True, help="Create unknown product uuids on the fly (benchmarks)."
)
@click.option(
    "--storage-port",
    type=click.IntRange(0, 65535),
    help="Port of the storage listener that serves signed download URLs (0 = any free port).  [default: 0]",
)
@click.option(
    "--storage-on-api-port",
    is_flag=True,
    help="Serve signed download URLs on the API's port instead (one port to publish; slower).",
)
@click.option("--rate-429", type=_RATE, help="Share of API requests answered 429 Too Many Requests.")
@click.option("--retry-after", type=click.IntRange(0), help="Retry-After seconds sent with injected 429/503.")
@click.option("--rate-500", type=_RATE, help="Share of API requests answered 500.")
@click.option("--rate-503", type=_RATE, help="Share of API requests answered 503.")
@click.option("--latency", type=click.FloatRange(0), help="Extra seconds before each API request is handled.")
@click.option("--job-failure-rate", type=_RATE, help="Share of render/turntable jobs that fail.")
@click.option(
    "--fail-product", multiple=True, metavar="UUID", help="Jobs of this product always fail (repeatable)."
)
@click.option(
    "--signed-url-ttl", type=click.FloatRange(0), help="Signed download URLs expire after this many seconds."
)
@click.option("--webhook-drop-rate", type=_RATE, help="Share of webhook deliveries never sent.")
@click.option("--webhook-duplicate-rate", type=_RATE, help="Share of webhook deliveries sent twice.")
@click.option("--fault-seed", type=int, help="Seed of the fault RNG, for reproducible runs.")
@click.option(
    "--reading",
    multiple=True,
    metavar="NAME=VALUE",
    help=f"Pick a reading of a documented contradiction (repeatable): {', '.join(CHOICES)}. "
    "See docs/sandbox.md.",
)
def sandbox_command(**options: Any) -> None:
    """Serve a local stand-in for the VNTANA Admin API until Ctrl-C."""
    try:
        config = build_config(options)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"sandbox configuration: {exc}") from exc
    custom = bool(config.access_token)
    try:
        serve(
            options["data_dir"],
            config,
            host=options["host"],
            port=options["port"],
            on_ready=lambda sb: _announce(sb, custom),
        )
    except RuntimeError as exc:  # the port is taken or the host cannot be bound
        raise click.ClickException(str(exc)) from exc
    except ReconcilerError as exc:  # an unusable data directory
        raise click.ClickException(f"{exc.message}\nhint: {exc.hint}" if exc.hint else exc.message) from exc
    except ValueError as exc:  # a seed that does not make sense
        raise click.ClickException(f"sandbox seed: {exc}") from exc
    click.echo("Sandbox stopped.")
