"""Put files on a product the way a VNTANA user does in the web app: a PDF, a QR code, a still
uploaded by hand to the Renders tab. Test plumbing over plain HTTP (the reconciler never
uploads): the resource sign-url (upload-attachments.md, Y:3686), then the signed PUT."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.sandbox.server import EmbeddedSandbox

# Smallest files that are what they say: a 1x1 PNG and a one-page PDF.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _token(sandbox: EmbeddedSandbox) -> str:
    with httpx.Client(base_url=sandbox.url) as http:
        step1 = http.post("/v1/auth/login/token", json={"personal-access-token": sandbox.access_token})
        step1.raise_for_status()
        org = http.post(
            "/v1/auth/refresh-token",
            headers={
                "X-AUTH-TOKEN": f"Bearer {step1.headers['x-auth-token'].removeprefix('Bearer ')}",
                "organizationUuid": sandbox.organization_uuid,
            },
        )
        org.raise_for_status()
        return org.headers["x-auth-token"].removeprefix("Bearer ")


def upload(
    sandbox: EmbeddedSandbox,
    product: str,
    name: str,
    data: bytes,
    store_type: str = "ATTACHMENT",
    workspace: str | None = None,
) -> dict[str, Any]:
    """Upload ``data`` as ``name`` to ``product`` (``store_type`` RENDER puts it on the Renders tab).

    Returns the new attachment as the attachment search lists it. Note that logging in here
    revokes the organization token of any other client of the same key, as on the platform."""
    token = _token(sandbox)
    headers = {"X-AUTH-TOKEN": f"Bearer {token}"}
    with httpx.Client(base_url=sandbox.url, headers=headers) as http:
        answer = http.post(
            "/v1/storage/upload/clients/resource/sign-url",
            json={
                "clientUuid": workspace or sandbox.client_uuid,
                "parentEntityUuid": product,
                "parentEntityType": "PRODUCT",
                "storeType": store_type,
                "resourceSettings": {
                    "contentType": "application/octet-stream",
                    "originalName": name,
                    "originalSize": len(data),
                },
            },
        )
        assert answer.status_code == 200, answer.text
        session = answer.json()["response"]
        put = httpx.put(session["location"], content=data)
        assert put.status_code == 200, put.text
        found = http.post(
            "/v1/attachments/search", json={"productUuid": product, "page": 0, "size": 100}
        ).json()
    return next(a for a in found["response"]["grid"] if a["blobId"] == session["blobId"])
