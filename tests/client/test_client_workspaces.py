"""``VntanaClient.for_workspace``: a client per workspace, one login between them (issue 11).

Against the shared sandbox: its organization has the workspaces ``catalogue`` and ``archive``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.sandbox.server import EmbeddedSandbox

ARCHIVE = "a983026e-cb31-58d8-8ec4-6753670e6cfd"
ARMCHAIR = "a642eb81-4f2e-5d86-9d03-3a2e46e7a7b2"  # a DRAFT of the archive: found by uuid, not by search


def test_a_workspace_client_shares_the_owners_login_and_sees_its_workspace(
    sandbox: EmbeddedSandbox, make_client
) -> None:
    base = make_client(client_uuid=sandbox.client_uuid)
    archive = base.for_workspace(ARCHIVE)
    assert base.for_workspace(ARCHIVE) is archive and base.for_workspace(sandbox.client_uuid) is base
    assert archive.get_product(ARMCHAIR).client_uuid == ARCHIVE
    assert archive.list_attachments(ARMCHAIR) == []
    assert {p.client_uuid for p in base.search_products(page_size=50)} == {sandbox.client_uuid}
    assert archive.login_info.workspace_step == "skipped"  # an Owner's organization token serves all
    requests = base.stats.snapshot().requests  # one set of counters for both
    assert requests["POST /v1/auth/login/token"] == 1
    assert requests["POST /v1/auth/refresh-token"] == 1


def test_a_workspace_clients_dead_token_is_replaced_through_the_one_login(
    sandbox: EmbeddedSandbox, make_client
) -> None:
    base = make_client()
    archive = base.for_workspace(ARCHIVE)
    assert archive.get_product(ARMCHAIR).client_uuid == ARCHIVE
    make_client().login()  # the same key and scope elsewhere: the platform revokes our token
    assert archive.get_product(ARMCHAIR).client_uuid == ARCHIVE
    stats = base.stats.snapshot()
    assert stats.relogins == 1
    assert stats.requests["POST /v1/auth/login/token"] == 2  # the first login, and one fresh one
    assert base.get_product(ARMCHAIR).uuid == ARMCHAIR  # the base has the fresh token too
    assert base.stats.snapshot().relogins == 1
