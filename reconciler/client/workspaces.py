"""Manifests for teams: products of several workspaces in one run.

``resolve_workspaces`` turns the ``workspace:`` values of the manifests (uuid or slug) into
workspace uuids, with the organization's list of workspaces when the platform gives it
(``GET /v1/clients/client-organizations``); an unknown one is a WorkspaceError naming the
file and line that wrote it and the workspaces there are.

``WorkspaceClients`` is the client the executor and refresh talk to: each call about a product
goes to the client of that product's workspace (``VntanaClient.for_workspace``: a token of that
workspace; one login for all), and anything else to the base client. A batch is one workspace
by construction (the planner groups by it), and a trigger that mixed two is refused here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, BinaryIO

from reconciler.errors import ApiError, WorkspaceError
from reconciler.plan import Plan

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHOWN = 12  # workspaces listed in an error's hint


def resolve_workspaces(client: Any, named: Mapping[str, str]) -> dict[str, str]:
    """``{value as written: workspace uuid}`` for every ``named`` value (value → ``file:line``).

    A uuid is taken as it is when the workspaces cannot be listed (a role that may not list
    them: the platform's answer to the first call says whether it is right); a slug needs the
    list. WorkspaceError, naming ``file:line`` and the known workspaces, for one that is not
    there."""
    if not named:
        return {}
    if getattr(client, "settings", None) is not None and client.settings.client_uuid:
        client = client.for_workspace(None)  # a workspace's token sees that workspace alone
    try:
        listed = list(client.workspaces())
        problem = None
    except ApiError as exc:
        listed, problem = [], exc.message
    out: dict[str, str] = {}
    unknown: list[str] = []
    by_slug = {w.slug: w.uuid for w in listed if w.slug}
    uuids = {w.uuid.lower() for w in listed}
    for value, where in named.items():
        if _UUID.match(value) and (problem is not None or value in uuids):
            out[value] = value
        elif value in by_slug:
            out[value] = by_slug[value].lower()
        else:
            unknown.append(f"{where}: workspace {value!r}")
    if not unknown:
        return out
    org = client.organization_uuid
    if problem is not None:
        raise WorkspaceError(
            f"{'; '.join(unknown)}: a slug needs the organization's list of workspaces, which the "
            f"platform did not give ({problem})",
            hint="write the workspace's uuid instead ('reconciler doctor' shows the one configured)",
        )
    known = ", ".join(f"{w.slug or w.name or '?'} ({w.uuid})" for w in listed[:_SHOWN]) or "none"
    more = f" and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
    raise WorkspaceError(
        f"{'; '.join(unknown)}: no such workspace in organization {org}, among those this user may see",
        hint=f"known workspaces (slug and uuid): {known}{more}; check the spelling, or ask for a role "
        "in the workspace",
    )


class WorkspaceClients:
    """The executor's client when products live in several workspaces; see the module's doc."""

    def __init__(self, base: Any, workspaces: Mapping[str, str]) -> None:
        """``workspaces``: product uuid → workspace uuid; a product not in it uses ``base``."""
        self.base = base
        self._of = dict(workspaces)
        self._product_of: dict[str, str] = {}  # attachment uuid → its product, as listed

    def follow(self, state: Any, named: Mapping[str, str], wanted: Mapping[str, str | None]) -> None:
        """Learn where each product lives: ``wanted`` (product → its manifest's ``workspace:``,
        None for the configured one), whose values ``named`` maps to where they are written
        (resolved here: WorkspaceError naming the place if one is unknown); a product of
        ``state`` that ``wanted`` does not name (an orphan, one in flight for ``collect``) goes
        to the workspace its record names. Without workspaces anywhere, nothing changes."""
        recorded = {u: r.workspace for u, r in state.products.items() if r.workspace}
        if not named and not recorded:
            return
        uuids = resolve_workspaces(self.base, named)
        of = {u: w for u, w in recorded.items() if u not in wanted}
        of.update({u: uuids[v] for u, v in wanted.items() if v is not None})
        self._of = of

    def resolved(self, plan: Plan) -> Plan:
        """``plan`` with each batch's workspace as a uuid (what the write-ahead record keeps)."""
        if not any(b.workspace for b in plan.batches):
            return plan
        batches = [
            replace(b, workspace=self._of.get(b.products[0])) if b.workspace else b for b in plan.batches
        ]
        return replace(plan, batches=batches)

    def workspace_of(self, product: str) -> str | None:
        """The workspace uuid of ``product``; None: the base client's (the configured one)."""
        return self._of.get(product)

    def client_for(self, product: str) -> Any:
        workspace = self._of.get(product)
        return self.base if workspace is None else self.base.for_workspace(workspace)

    def clients_for(self, products: Iterable[str]) -> list[Any]:
        """The clients ``products`` use, each once: the base first when one has no workspace."""
        found: dict[str | None, Any] = {}
        for workspace in sorted({self._of.get(p) for p in products}, key=lambda w: w or ""):
            found[workspace] = self.base if workspace is None else self.base.for_workspace(workspace)
        return list(found.values())

    # -- what the executor and refresh call ---------------------------------------------
    def trigger_renders(self, product_uuids: Iterable[str], spec: Mapping[str, Any], **kw: Any) -> Any:
        products = list(product_uuids)
        workspaces = {self._of.get(p) for p in products}
        if len(workspaces) > 1:  # the planner never makes one: a request is made in one workspace
            raise WorkspaceError(f"a render request may not mix workspaces ({sorted(map(str, workspaces))})")
        return self.client_for(products[0]).trigger_renders(products, spec, **kw)

    def list_attachments(self, product_uuid: str, entity_type: str | None = None) -> list[Any]:
        found: list[Any] = self.client_for(product_uuid).list_attachments(product_uuid, entity_type)
        if product_uuid in self._of:
            self._product_of.update((a.uuid, product_uuid) for a in found)
        return found

    def download(self, attachment: Any, store_type: str, sink: BinaryIO | None = None) -> Any:
        # The search's answer may not name the product: the listing that found the file does.
        product = self._product_of.get(attachment.uuid) or getattr(attachment, "product_uuid", None)
        client = self.client_for(product) if product else self.base
        return client.download(attachment, store_type, sink)

    def delete_attachment(self, product_uuid: str, uuid: str) -> None:
        self.client_for(product_uuid).delete_attachment(product_uuid, uuid)

    def __getattr__(self, name: str) -> Any:
        # Everything not about one product (stats, login, webhooks, workspaces) is the base's.
        return getattr(self.base, name)
