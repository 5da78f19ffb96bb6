"""``validate``, ``schema`` and ``plan``: the offline commands (``plan --refresh`` asks the platform)."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import (
    connection_from,
    connection_options,
    format_option,
    manifest_paths,
    manifests_option,
    no_color_option,
    plan_shaping_options,
    state_from,
    state_option,
    use_colour,
)
from reconciler.cli.terminal import echo_json, note
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.loader import load_desired
from reconciler.plan import CATEGORIES
from reconciler.planfile import save_plan
from reconciler.planning import ApplyRequest, Execution, Output, PlanShaping, run_plan
from reconciler.spec import manifest_json_schema
from reconciler.views.plan import render_json, render_markdown, render_text


@click.command()
@manifests_option
@format_option("text", "json")
def validate(manifests: tuple[Path, ...], fmt: str) -> None:
    """Check manifests offline: no state, no network."""
    try:
        desired = load_desired(manifest_paths(manifests))
    except ManifestError as exc:
        if fmt == "json":
            echo_json(
                {"valid": False, "diagnostics": [d.to_json() for d in exc.diagnostics], "more": exc.more}
            )
            sys.exit(1)
        raise
    if fmt == "json":
        echo_json(
            {
                "valid": True,
                "products": len(desired.products),
                "files": list(desired.files),
                "diagnostics": [],
            }
        )
    else:
        click.echo(f"OK: {len(desired.products)} products in {len(desired.files)} file(s).")


@click.command()
def schema() -> None:
    """Print the JSON Schema of a manifest file (for editor completion and checks)."""
    echo_json(manifest_json_schema())


def planning_request(kw: dict[str, Any], **extra: Any) -> ApplyRequest:
    """The options of a planning command (plan, apply, refresh), as one typed request grouped by
    concern; ``extra`` sets options the command implies (refresh: ``refresh_only=True`` ...)."""
    kw = {**kw, **extra}
    connection = connection_from(kw)
    state_path = state_from(kw.pop("state_path", None), sandbox=connection.sandbox)
    manifests = manifest_paths(kw.pop("manifests"))
    colour = use_colour(kw.pop("no_color", False))
    request = ApplyRequest(
        manifests=manifests,
        state_path=state_path,
        shaping=PlanShaping(**_take(kw, PlanShaping)),
        connection=connection,
        execution=Execution(**_take(kw, Execution)),
        output=Output(fmt=kw.pop("fmt"), colour=colour),
    )
    assert not kw, f"options no request field takes: {sorted(kw)}"
    return request


def _take(kw: dict[str, Any], kind: type) -> dict[str, Any]:
    """The options of ``kw`` that are fields of the dataclass ``kind``, taken out of ``kw``."""
    return {f.name: kw.pop(f.name) for f in fields(kind) if f.name in kw}


@click.command()
@manifests_option
@state_option()
@plan_shaping_options
@connection_options
@format_option("text", "json", "markdown")
@click.option("--out", type=click.Path(path_type=Path), help="Save the plan for 'reconciler apply FILE'.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when no changes, 2 when changes, 1 on error.")
@click.option(
    "--exit-code-on",
    "exit_code_on",
    default=",".join(CATEGORIES),
    show_default=True,
    metavar="CATEGORIES",
    help="Which change categories make --detailed-exitcode return 2 "
    f"(comma-separated: {', '.join(CATEGORIES)}).",
)
@click.option("--show-unchanged", is_flag=True, help="List unchanged products too.")
@no_color_option
def plan(**kw: Any) -> None:
    """Show which products would be rendered or re-rendered, what that replaces, and its cost."""
    out, detailed, show_unchanged = kw.pop("out"), kw.pop("detailed_exitcode"), kw.pop("show_unchanged")
    categories = _categories(kw.pop("exit_code_on"))
    req = planning_request(kw)
    if req.shaping.verify and not req.shaping.refresh:
        raise ReconcilerError("--verify needs --refresh (it re-downloads what the platform holds)")
    result = run_plan(req, note)
    if req.fmt == "json":
        # color=True: a JSON document holds no colour codes, and looking for them in the 50 MB
        # of a 100,000-product plan took longer than writing it.
        click.echo(render_json(result), nl=False, color=True)
    elif req.fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        click.echo(render_text(result, colour=req.output.colour, show_noop=show_unchanged), nl=False)
    result.enforce_limits()
    if out is not None:
        save_plan(result, out)
        if req.fmt == "text":
            click.echo(
                f"Saved the plan to {out}; run '{req.again('apply')} {out}' to execute exactly this plan."
            )
    if detailed and result.has_changes_in(categories):
        sys.exit(2)


def _categories(text: str) -> set[str]:
    chosen = {c.strip() for c in text.split(",") if c.strip()}
    unknown = sorted(chosen - set(CATEGORIES))
    if unknown:
        raise ReconcilerError(
            f"--exit-code-on: unknown categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}",
            hint="choose from " + ", ".join(CATEGORIES),
        )
    return chosen
