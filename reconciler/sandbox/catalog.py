"""Products as the API shows them: the JSON views of a stored product and its 3D model.

Every product has a small GLB model (``media.model_glb``), made on first need and kept as a
blob, so ``asset.assetOriginalSize`` and the model entry are real numbers of a real file.
Field names follow ``ProductGetResponseModel``, ``ProductSearchResponseModel`` and the
webhook payload of the Renders page.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from typing import Any

from reconciler.sandbox import media
from reconciler.sandbox.store import Store, iso, slug

# Namespace for the ids the sandbox derives from a product uuid (asset, model, generation).
_NS = uuidlib.UUID("6f1d6a9e-3c55-4d8e-9a57-5ad1b0c0ffee")
_model_lock = threading.Lock()


def derived_uuid(product_uuid: str, what: str) -> str:
    """A stable uuid for something that belongs to a product (its model, its asset request)."""
    return str(uuidlib.uuid5(_NS, f"{product_uuid}/{what}"))


def ensure_model(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """Make sure the product's GLB exists; returns the (possibly updated) product row."""
    if product.get("model_blob_id") and store.blob_path(product["model_blob_id"]).exists():
        return product
    with _model_lock:
        fresh = store.product(product["uuid"]) or product
        if fresh.get("model_blob_id") and store.blob_path(fresh["model_blob_id"]).exists():
            return fresh
        data = media.model_glb(fresh["shape"], fresh["uuid"])
        blob_id = f"{fresh['uuid']}/model-{derived_uuid(fresh['uuid'], 'model')}.glb"
        store.write_blob(blob_id, data)
        store.set_product_model(fresh["uuid"], blob_id, len(data))
        return store.product(fresh["uuid"]) or fresh


def _asset(product: dict[str, Any]) -> dict[str, Any]:
    name = f"{slug(product['name'])}.glb"
    return {
        "generationRequestUuid": derived_uuid(product["uuid"], "generation-request"),
        "assetBlobId": product["model_blob_id"],
        "assetOriginalName": name,
        "assetOriginalSize": int(product["model_size"] or 0),
        "conversionFormats": ["GLB"],
        "models": [{
            "uuid": derived_uuid(product["uuid"], "model"),
            "conversionFormat": "GLB",
            "modelBlobId": product["model_blob_id"],
            "conversionStatus": "COMPLETED",
            "modelSize": int(product["model_size"] or 0),
        }],
    }


def product_view(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """``ProductGetResponseModel`` of one product."""
    product = ensure_model(store, product)
    return {
        "uuid": product["uuid"],
        "clientUuid": product["client_uuid"],
        "organizationUuid": product["organization_uuid"],
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "conversionStatus": "COMPLETED",
        "malwareProcessingStatus": "SUCCEEDED",
        "assetType": "THREE_D",
        "asset": _asset(product),
        "attributes": {},
        "tags": [],
        "locations": [],
        "updatable": True,
        "isUpdatable": True,
        "autoPublish": False,
        "created": iso(product["created"]),
        "updated": iso(product["updated"]),
    }


def product_search_view(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """``ProductSearchResponseModel`` of one product (a row of a search grid)."""
    client_slug = product.get("client_slug") or ""
    product = ensure_model(store, product)
    return {
        "uuid": product["uuid"],
        "clientUuid": product["client_uuid"],
        "clientSlug": client_slug,
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "conversionStatus": "COMPLETED",
        "malwareProcessingStatus": "SUCCEEDED",
        "assetType": "THREE_D",
        "asset": _asset(product),
        "attributes": [],
        "tags": [],
        "locations": [],
        "variantGroups": [],
        "projects": [],
        "created": iso(product["created"]),
        "updated": iso(product["updated"]),
    }


def webhook_product(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """The ``product`` object of a webhook payload (Renders page example)."""
    product = ensure_model(store, product)
    return {
        "uuid": product["uuid"],
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "asset": {
            "assetOriginalName": f"{slug(product['name'])}.glb",
            "assetOriginalSize": int(product["model_size"] or 0),
            "generationRequestUuid": derived_uuid(product["uuid"], "generation-request"),
        },
    }
