"""Products as the API shows them: the JSON views of a stored product and its 3D model.

A seeded product has a small GLB model (``media.model_glb``), made on first need and kept as a
blob, so ``asset.assetOriginalSize`` and the model entry are real numbers of a real file. A
product created through the API has no asset (``conversionStatus: NO_ASSET``) until a model is
uploaded; the upload is its model. Field names follow ``ProductGetResponseModel``,
``ProductSearchResponseModel`` and the webhook payload of the Renders page.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from typing import Any

from reconciler.sandbox import media
from reconciler.sandbox.readings import Readings
from reconciler.sandbox.store import Store, slug

# Namespace for the ids the sandbox derives from a product uuid (asset, model, generation).
_NS = uuidlib.UUID("6f1d6a9e-3c55-4d8e-9a57-5ad1b0c0ffee")
_model_lock = threading.Lock()


def derived_uuid(product_uuid: str, what: str) -> str:
    """A stable uuid for something that belongs to a product (its model, its asset request)."""
    return str(uuidlib.uuid5(_NS, f"{product_uuid}/{what}"))


def thumbnail_blob_id(product_uuid: str) -> str:
    return f"{derived_uuid(product_uuid, 'thumbnail')}.png"


def has_asset(product: dict[str, Any]) -> bool:
    return bool(product.get("conversion_status", "COMPLETED") != "NO_ASSET")


def ensure_model(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """Make sure a product with an asset has its GLB; returns the (possibly updated) product row."""
    if not has_asset(product):
        return product
    if product.get("model_blob_id") and store.blob_path(product["model_blob_id"]).exists():
        return product
    with _model_lock:
        fresh = store.product(product["uuid"]) or product
        if fresh.get("model_blob_id") and store.blob_path(fresh["model_blob_id"]).exists():
            return fresh
        data = media.model_glb(fresh["shape"], fresh["uuid"])
        blob_id = f"{derived_uuid(fresh['uuid'], 'model')}.glb"
        store.write_blob(blob_id, data)
        store.set_product_model(fresh["uuid"], blob_id, len(data))
        return store.product(fresh["uuid"]) or fresh


def _asset(product: dict[str, Any]) -> dict[str, Any]:
    if not has_asset(product):
        return {
            "generationRequestUuid": derived_uuid(product["uuid"], "generation-request"),
            "conversionFormats": [],
            "models": [],
        }
    name = product.get("asset_name") or f"{slug(product['name'])}.glb"
    return {
        "generationRequestUuid": derived_uuid(product["uuid"], "generation-request"),
        "thumbnailBlobId": thumbnail_blob_id(product["uuid"]),
        "assetBlobId": product["model_blob_id"],
        "assetOriginalName": name,
        "assetOriginalSize": int(product["model_size"] or 0),
        "conversionFormats": ["GLB"],
        "models": [
            {
                "uuid": derived_uuid(product["uuid"], "model"),
                "conversionFormat": "GLB",
                "modelBlobId": product["model_blob_id"],
                "conversionStatus": "COMPLETED",
                "modelSize": int(product["model_size"] or 0),
            }
        ],
    }


def _attributes(product: dict[str, Any]) -> dict[str, str]:
    try:
        data = json.loads(product.get("attributes") or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def product_view(store: Store, product: dict[str, Any], readings: Readings) -> dict[str, Any]:
    """``ProductGetResponseModel`` of one product."""
    product = ensure_model(store, product)
    view = {
        "uuid": product["uuid"],
        "clientUuid": product["client_uuid"],
        "organizationUuid": product["organization_uuid"],
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "conversionStatus": product.get("conversion_status") or "COMPLETED",
        "malwareProcessingStatus": "SUCCEEDED" if has_asset(product) else "NO_FILE",
        "assetType": "THREE_D" if has_asset(product) else "NO_ASSET",
        "asset": _asset(product),
        "attributes": _attributes(product),
        "tags": [],
        "locations": [],
        "updatable": True,
        "isUpdatable": True,
        "autoPublish": bool(product.get("auto_publish")),
        "created": readings.time(product["created"]),
        "updated": readings.time(product["updated"]),
    }
    if product.get("pipeline_uuid"):
        view["pipelineUuid"] = product["pipeline_uuid"]
    return view


def product_search_view(store: Store, product: dict[str, Any], readings: Readings) -> dict[str, Any]:
    """``ProductSearchResponseModel`` of one product (a row of a search grid)."""
    client_slug = product.get("client_slug") or ""
    product = ensure_model(store, product)
    view = {
        "uuid": product["uuid"],
        "clientUuid": product["client_uuid"],
        "clientSlug": client_slug,
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "conversionStatus": product.get("conversion_status") or "COMPLETED",
        "malwareProcessingStatus": "SUCCEEDED" if has_asset(product) else "NO_FILE",
        "assetType": "THREE_D" if has_asset(product) else "NO_ASSET",
        "asset": _asset(product),
        "attributes": [],
        "tags": [],
        "locations": [],
        "variantGroups": [],
        "projects": [],
        "created": readings.time(product["created"]),
        "updated": readings.time(product["updated"]),
    }
    if product.get("pipeline_uuid"):
        view["pipelineUuid"] = product["pipeline_uuid"]
    return view


def webhook_product(store: Store, product: dict[str, Any]) -> dict[str, Any]:
    """The ``product`` object of a webhook payload (Renders page example)."""
    product = ensure_model(store, product)
    return {
        "uuid": product["uuid"],
        "name": product["name"],
        "description": product["description"],
        "status": product["status"],
        "asset": {
            "assetOriginalName": product.get("asset_name") or f"{slug(product['name'])}.glb",
            "assetOriginalSize": int(product["model_size"] or 0),
            "generationRequestUuid": derived_uuid(product["uuid"], "generation-request"),
        },
    }
