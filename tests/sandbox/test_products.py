"""Organizations, workspaces and products: listing, search, paging, visibility across scopes."""

from __future__ import annotations

import json
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
    assert grid[0]["name"] == "Demo Org"
    assert api.http.get("/v1/organizations").status_code == 401


def test_client_organizations(api: Api, validate, api_factory) -> None:
    answer = api.get("/v1/clients/client-organizations")
    validate("ClientOrganizationResultResponseOk", answer.json())
    uuids = [c["uuid"] for c in answer.json()["response"]["grid"]]
    assert uuids[0] == api.sandbox.client_uuid and ARCHIVE["uuid"] in uuids
    scoped = api_factory(api.sandbox)
    scoped.login(client_uuid=api.sandbox.client_uuid)
    assert [c["uuid"] for c in scoped.get("/v1/clients/client-organizations").json()["response"]["grid"]] == [uuids[0]]


def test_get_product(api: Api, validate) -> None:
    answer = api.get(f"/v1/products/{SHOE}")
    assert answer.status_code == 200
    validate("ProductGetResultResponseOk", answer.json())
    product = answer.json()["response"]
    assert product["name"] == "Trail Runner GTX"
    assert product["organizationUuid"] == api.sandbox.organization_uuid
    assert product["asset"]["assetOriginalSize"] > 0
    assert product["asset"]["models"][0]["conversionFormat"] == "GLB"


def test_unknown_and_foreign_products_are_not_found(api: Api, validate) -> None:
    for uuid in ("00000000-0000-0000-0000-000000000000", FOREIGN_PRODUCT):
        answer = api.get(f"/v1/products/{uuid}")
        assert answer.status_code == 404
        validate("ProductGetResultResponseNotFound", answer.json())
        assert answer.json()["errors"] == ["PRODUCT_NOT_FOUND"]


def test_workspace_token_sees_only_its_workspace(api_factory, sandbox) -> None:
    scoped = api_factory(sandbox)
    scoped.login(client_uuid=sandbox.client_uuid)
    assert scoped.get(f"/v1/products/{SHOE}").status_code == 200
    answer = scoped.get(f"/v1/products/{ARCHIVE_PRODUCT}")
    assert (answer.status_code, answer.json()["errors"]) == (403, ["FORBIDDEN"])


def test_search_pages_through_a_workspace(api: Api, validate) -> None:
    seen = []
    page = 1
    while True:
        answer = api.post("/v1/products/clients/search", params={"clientUuid": api.sandbox.client_uuid},
                          json={"page": page, "size": 10})
        assert answer.status_code == 200
        validate("ProductSearchInOneClientResultResponseOk", answer.json())
        grid = answer.json()["response"]["grid"]
        total = answer.json()["response"]["totalCount"]
        seen += [p["uuid"] for p in grid]
        if not grid:
            break
        page += 1
    assert len(seen) == len(set(seen)) == total == 44


def test_search_in_one_client_and_filters(api: Api, validate) -> None:
    answer = api.post(f"/v1/products/clients/{ARCHIVE['uuid']}/search", json={"page": 1, "size": 5})
    validate("ProductSearchResultResponseOk", answer.json())
    assert {p["uuid"] for p in answer.json()["response"]["grid"]} == {p["uuid"] for p in ARCHIVE["products"]}
    by_term = api.post("/v1/products/clients/search", json={"searchTerm": "chelsea", "page": 1, "size": 10})
    assert sorted(p["name"] for p in by_term.json()["response"]["grid"]) == ["Chelsea Boot, Black", "Chelsea Boot, Tan"]
    by_uuid = api.post("/v1/products/clients/search", json={"productsUuids": [SHOE], "page": 1, "size": 10})
    assert [p["uuid"] for p in by_uuid.json()["response"]["grid"]] == [SHOE]


def test_search_errors(api: Api, validate) -> None:
    for body, code in (({"page": 0, "size": 5}, "INVALID_PAGE"), ({"page": 1, "size": 0}, "INVALID_SIZE"),
                       ({"page": 1, "size": 1000}, "INVALID_SIZE")):
        answer = api.post("/v1/products/clients/search", json=body)
        assert (answer.status_code, answer.json()["errors"]) == (422, [code])
        validate("ProductSearchInOneClientResultResponseUnprocessable", answer.json())
    foreign = api.post(f"/v1/products/clients/{OTHER_ORG['clients'][0]['uuid']}/search", json={"page": 1, "size": 5})
    assert foreign.status_code == 403
    other_org = api.post("/v1/products/clients/search", json={"organizationUuid": OTHER_ORG["uuid"], "page": 1, "size": 5})
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
