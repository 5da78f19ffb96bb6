"""``reconciler fmt``: rewrite manifests in one layout (reconciler.formatting), or check them."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.formatting import format_paths, write_formatted


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--check", is_flag=True, help="Change nothing: print a diff of what would change and exit 1 if any."
)
def fmt_command(paths: tuple[Path, ...], check: bool) -> None:
    """Rewrite manifests in one layout (indentation, key order, quoting), keeping every comment.

    PATHS are manifest files or folders (default: manifests/). The meaning never changes:
    each file is read back and compared before it is written."""
    results, problems = format_paths(list(paths) or [Path("manifests")])
    changed = [r for r in results if r.changed]
    for r in changed:
        if check:
            click.echo(r.diff(), nl=False)
        else:
            write_formatted(r)
            click.echo(f"Formatted {r.path}")
    verb = "would be reformatted" if check else "reformatted"
    click.echo(f"{len(changed)} file(s) {verb}, {len(results) - len(changed)} unchanged.", err=check)
    if problems:
        raise ManifestError(problems)
    if check and changed:
        again = "".join(" " + shlex.quote(str(p)) for p in paths)
        raise ReconcilerError(
            f"{len(changed)} manifest file(s) are not formatted",
            hint=f"run 'reconciler fmt{again}' to rewrite them",
        )
