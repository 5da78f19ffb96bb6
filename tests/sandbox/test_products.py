"""Organizations, workspaces and products: listing, search, paging, visibility across scopes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ruamel.yaml import YAML

from reconciler.sandbox import media

from .helpers import SHOE, Api

SEED = json.loads((Path(__file__).resolve().parents[2] / "reconciler" / "sandbox" / "seed.json").read_text())
OTHER_ORG = SEED["organizations"][1]
FOREIGN_PRODUCT = OTHER_ORG["clients"][0]["products"][0]["uuid"]
ARCHIVE = SEED["organizations"][0]["clients"][1]
ARCHIVE_PRODUCT = ARCHIVE["products"][0]["uuid"]


def test_seed_holds_every_manifest_product_with_a_known_shape() -> None:
    root = Path(__file__).resolve().parents[2] / "manifests"
    wanted = {}
    for path in root.rglob("*.yaml"):
        for product in YAML(typ="safe").load(path.read_text()).get("products", []):
            wanted[product["uuid"]] = product["name"]
    seeded = {p["uuid"]: p for org in SEED["organizations"] for c in org["clients"] for p in c["products"]}
    assert len(wanted) == 40
    assert set(wanted) <= set(seeded)
    assert all(seeded[u]["name"] == name for u, name in wanted.items())
    assert all(p["shape"] in media.SHAPES for p in seeded.values())
    assert seeded[SHOE]["shape"] == "shoe"


def test_organizations_lists_only_the_users_organizations(api: Api, validate) -> None:
    answer = api.get("/v1/organizations")
    assert answer.status_code == 200
    validate("UserOrganizationResultResponseOk", answer.json())
    grid = answer.json()["response"]["grid"]
    assert [o["uuid"] for o in grid] == [api.sandbox.organization_uuid]
    assert (grid[0]["name"], grid[0]["slug"], grid[0]["role"]) == (
        "Demo Org",
        "demo-org",
        "ORGANIZATION_OWNER",
    )
    # organizations-clients.md's example: 2022-06-20T14:42:15.488732 (microseconds, no zone)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", grid[0]["created"])
    assert api.get("/v1/organizations", token="").status_code == 403


def test_client_organizations(api: Api, validate, api_factory) -> None:
    answer = api.get("/v1/clients/client-organizations")
    validate("ClientOrganizationResultResponseOk", answer.json())
    grid = answer.json()["response"]["grid"]
    assert [c["uuid"] for c in grid] == [api.sandbox.client_uuid, ARCHIVE["uuid"]]
    assert {c["slug"] for c in grid} == {"catalogue", "archive"}
    scoped = api_factory(api.sandbox)
    scoped.login(role="CLIENT_ORGANIZATION_CONTENT_MANAGER")
    assert [c["uuid"] for c in scoped.get("/v1/clients/client-organizations").json()["response"]["grid"]] == [
        grid[0]["uuid"]
    ]


def test_get_product(api: Api, validate) -> None:
    answer = api.get(f"/v1/products/{SHOE}")
    assert answer.status_code == 200
    validate("ProductGetResultResponseOk", answer.json())
    product = answer.json()["response"]
    assert product["name"] == "Trail Runner GTX"
    assert product["organizationUuid"] == api.sandbox.organization_uuid
    assert product["asset"]["assetOriginalSize"] > 0
    assert product["asset"]["models"][0]["conversionFormat"] == "GLB"
    assert re.fullmatch(r"[0-9a-f-]{36}\.glb", product["asset"]["assetBlobId"])


def test_unknown_and_foreign_products_are_not_found(api: Api, validate) -> None:
    for uuid in ("00000000-0000-0000-0000-000000000000", FOREIGN_PRODUCT):
        answer = api.get(f"/v1/products/{uuid}")
        assert answer.status_code == 404
        validate("ProductGetResultResponseNotFound", answer.json())
        assert answer.json()["errors"] == ["PRODUCT_NOT_FOUND"]


def test_workspace_token_sees_only_its_workspace(api_factory, sandbox) -> None:
    scoped = api_factory(sandbox)
    scoped.login(role="CLIENT_ORGANIZATION_CONTENT_MANAGER")
    assert scoped.get(f"/v1/products/{SHOE}").status_code == 200
    answer = scoped.get(f"/v1/products/{ARCHIVE_PRODUCT}")
    assert (answer.status_code, answer.json()["errors"]) == (403, ["FORBIDDEN"])


def _search(api: Api, path: str = "/v1/products/clients/search", **body):
    params = {"clientUuid": api.sandbox.client_uuid} if path.endswith("/clients/search") else None
    return api.post(
        path,
        params=params,
        json={"page": 1, "size": 10, "organizationUuid": api.sandbox.organization_uuid, **body},
    )


def test_search_pages_from_one_and_never_returns_drafts(api: Api, validate) -> None:
    seen = []
    page = 1
    while True:
        answer = _search(api, page=page)
        assert answer.status_code == 200
        validate("ProductSearchInOneClientResultResponseOk", answer.json())
        grid = answer.json()["response"]["grid"]
        total = answer.json()["response"]["totalCount"]
        seen += [p["uuid"] for p in grid]
        if not grid:
            break
        page += 1
    catalogue = SEED["organizations"][0]["clients"][0]["products"]
    live = [p["uuid"] for p in catalogue if p["status"] != "DRAFT"]
    assert len(seen) == len(set(seen)) == total == len(live) == 40
    assert set(seen) == set(live)
    drafts = _search(api, status=["DRAFT"]).json()["response"]
    assert drafts == {"totalCount": 0, "grid": []}


def test_search_filters_before_paging(api: Api) -> None:
    # 40 live products, two of them Chelsea boots: a filter applied after paging would lose them.
    answer = _search(api, searchTerm="chelsea", size=2)
    assert answer.json()["response"]["totalCount"] == 2
    assert sorted(p["name"] for p in answer.json()["response"]["grid"]) == [
        "Chelsea Boot, Black",
        "Chelsea Boot, Tan",
    ]
    by_uuid = _search(api, productsUuids=[SHOE])
    assert [p["uuid"] for p in by_uuid.json()["response"]["grid"]] == [SHOE]
    by_status = _search(api, status=["LIVE_PUBLIC"], size=1, page=40)
    assert by_status.json()["response"]["totalCount"] == 40 and len(by_status.json()["response"]["grid"]) == 1
    by_name = _search(api, sorts={"name": "DESC"}, size=100).json()["response"]["grid"]
    assert [p["name"] for p in by_name] == sorted((p["name"] for p in by_name), reverse=True)


def test_search_in_one_client(api: Api, validate) -> None:
    answer = _search(api, f"/v1/products/clients/{api.sandbox.client_uuid}/search", size=5)
    validate("ProductSearchResultResponseOk", answer.json())
    assert answer.json()["response"]["totalCount"] == 40
    archive = _search(api, f"/v1/products/clients/{ARCHIVE['uuid']}/search")
    assert archive.json()["response"] == {"totalCount": 0, "grid": []}  # both are drafts


def test_search_errors(api: Api, validate) -> None:
    org = api.sandbox.organization_uuid
    for body, code in (
        ({"page": 0, "size": 5}, "INVALID_PAGE"),
        ({"page": 1, "size": 0}, "INVALID_SIZE"),
        ({"page": 1, "size": 1000}, "INVALID_SIZE"),
        ({"size": 5}, "MISSING_PAGE"),
        ({"page": 1}, "MISSING_SIZE"),
        ({"sorts": {"colour": "ASC"}}, "INVALID_SORT_FIELD"),
    ):
        answer = api.post(
            "/v1/products/clients/search",
            params={"clientUuid": api.sandbox.client_uuid},
            json={"organizationUuid": org, "page": 1, "size": 5, **body}
            if "sorts" in body
            else {"organizationUuid": org, **body},
        )
        assert (answer.status_code, answer.json()["errors"]) == (422, [code]), body
        validate("ProductSearchInOneClientResultResponseUnprocessable", answer.json())
    no_org = api.post(
        "/v1/products/clients/search",
        params={"clientUuid": api.sandbox.client_uuid},
        json={"page": 1, "size": 5},
    )
    assert (no_org.status_code, no_org.json()["errors"]) == (422, ["MISSING_ORGANIZATION_UUID"])
    # Y:4765: the multi-workspace route requires the clientUuid query parameter
    no_client = api.post("/v1/products/clients/search", json={"page": 1, "size": 5, "organizationUuid": org})
    assert (no_client.status_code, no_client.json()["errors"]) == (422, ["MISSING_CLIENT_UUID"])
    foreign = _search(api, f"/v1/products/clients/{OTHER_ORG['clients'][0]['uuid']}/search")
    assert foreign.status_code == 403
    other_org = _search(api, organizationUuid=OTHER_ORG["uuid"])
    assert other_org.status_code == 403


def test_auto_create_products(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(auto_create_products=True)
    api = api_factory(sb)
    api.login()
    new = "11111111-2222-3333-4444-555555555555"
    answer = api.get(f"/v1/products/{new}")
    assert answer.status_code == 200
    assert answer.json()["response"]["clientUuid"] == sb.client_uuid
    assert api.get(f"/v1/products/{FOREIGN_PRODUCT}").status_code == 404  # never steals another org's product
