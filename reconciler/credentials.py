"""Before the first checkpoint: can these credentials do what the plan needs?

A wrong token, a viewer's key or a workspace-level user without a workspace used to reach the
render trigger and be recorded as failed products ("trigger refused: FORBIDDEN", issue 13).
``check_credentials`` logs in and looks at the role first, so such a run stops with one error
and an untouched state. What it cannot see (a role the platform does not name) is caught by
the executor: a trigger refused 401/403 stops the run and takes its write-ahead back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import ApiError, CredentialsError, ReconcilerError

if TYPE_CHECKING:  # types only: the client loads httpx and its models (start-up time)
    from reconciler.client_protocols import RenderClient

RENDER_ROLES = frozenset(
    {
        "ORGANIZATION_OWNER",
        "ORGANIZATION_ADMIN",
        "CLIENT_ORGANIZATION_ADMIN",
        "CLIENT_ORGANIZATION_CONTENT_MANAGER",
        "OWNER",
        "ADMIN",
    }
)
"""The roles ``POST /v1/products/renders`` allows (Y:4355); they also delete attachments."""
ORGANIZATION_WIDE = frozenset({"ORGANIZATION_OWNER", "ORGANIZATION_ADMIN", "OWNER", "ADMIN"})


def check_credentials(client: RenderClient, *, writes: bool) -> None:
    """Log in and check the role before the first checkpoint; CredentialsError if it cannot work.

    ``writes``: the plan triggers renders or deletes files (a read-only run needs only the
    login). A role the platform does not name is let through: a refusal mid-run stops the run
    then, leaving every product as it was."""
    try:
        client.login()
        info = client.login_info
    except (ApiError, ReconcilerError) as exc:
        raise CredentialsError(
            f"cannot log in, so nothing was started: {exc.message}",
            hint=exc.hint or "check VNTANA_API_TOKEN and VNTANA_ORGANIZATION_UUID",
        ) from exc
    if not writes:
        return
    role = (info.role or "").upper()
    if not role or role in ORGANIZATION_WIDE:
        return
    workspace = client.settings.client_uuid
    try:
        workspaces = client.workspaces()
    except ApiError:
        return  # cannot tell: the trigger's answer will
    mine = [w for w in workspaces if (w.role or "").upper() in RENDER_ROLES]
    if not workspace:
        choices = ", ".join(f"{w.uuid} ({w.slug or w.name or '?'}, {w.role})" for w in mine) or "none"
        raise CredentialsError(
            f"the user's role in organization {client.organization_uuid} is {info.role}, a workspace-level role, and no "
            "workspace is configured, so the organization token reaches no product; nothing was started",
            hint=f"set VNTANA_CLIENT_UUID (or --workspace) to a workspace where the user may render: {choices}",
        )
    entry = next((w for w in workspaces if w.uuid == workspace), None)
    if entry is not None and entry.role and entry.role.upper() not in RENDER_ROLES:
        raise CredentialsError(
            f"the user's role in workspace {workspace} is {entry.role}, which may not trigger renders or delete files "
            f"(allowed: {', '.join(sorted(r for r in RENDER_ROLES if '_' in r))}); nothing was started",
            hint="use the personal access token of a user with one of those roles (a user has one key)"
            + (
                f", or a workspace where this user may render: {', '.join(w.uuid for w in mine)}"
                if mine
                else ""
            ),
        )
