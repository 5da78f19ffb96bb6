"""``POST /v1/products/renders``: validation, partial success, jobs, replace-on-rerender, real files."""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image

from .helpers import CHAIR, SHOE, Api

BOOT = "49b33e22-b76e-5f62-84fc-2edc805927b7"  # Chelsea Boot, Tan
SOFA = "a0000000-0000-0000-0000-00000000dead"  # not in the seed


def test_trigger_accepts_known_products_and_reports_unknown_ones(api: Api, validate) -> None:
    answer = api.render(SHOE, SOFA, SHOE)
    assert answer.status_code == 200
    validate("RenderGenerateResultResponse", answer.json())
    assert answer.json() == {
        "success": True,
        "errors": [],
        "response": {"uuids": [SHOE], "errors": {SOFA: "PRODUCT_NOT_FOUND"}},
    }
    assert api.sandbox.wait_idle(timeout=20)


def test_trigger_without_errors_answers_errors_null(api: Api, validate) -> None:
    answer = api.render(CHAIR)
    # VNTANA's own example answer (the Renders page) shows ``"errors": null``; the YAML's
    # generator never marks fields nullable, so validate the rest with an empty map.
    assert answer.json()["response"] == {"uuids": [CHAIR], "errors": None}
    validate("RenderGenerateResultResponse", {**answer.json(), "response": {"uuids": [CHAIR], "errors": {}}})
    assert api.sandbox.wait_idle(timeout=20)


def test_trigger_with_only_unknown_products_is_404(api: Api, validate) -> None:
    answer = api.render(SOFA)
    assert answer.status_code == 404
    validate("RenderGenerateResultResponse", answer.json())
    assert answer.json()["errors"] == ["PRODUCT_NOT_FOUND"]
    assert answer.json()["response"] == {"uuids": [], "errors": {SOFA: "PRODUCT_NOT_FOUND"}}


@pytest.mark.parametrize("fmt", ["png", "Png", "JPG", "webp"])
def test_format_is_case_insensitive(api: Api, fmt: str) -> None:
    assert api.render(SHOE, imageFormat=fmt).status_code == 200
    assert api.sandbox.wait_idle(timeout=20)


@pytest.mark.parametrize(
    "change, codes",
    [
        ({"imageFormat": "TIFF"}, ["NOT_SUPPORTED_IMAGE_FORMAT"]),
        ({"imageFormat": "JPEG"}, ["NOT_SUPPORTED_IMAGE_FORMAT"]),
        ({"imageFormat": None}, ["MISSING_IMAGE_FORMAT"]),
        ({"imageWidth": None}, ["MISSING_IMAGE_WIDTH"]),
        ({"imageHeight": None}, ["MISSING_IMAGE_HEIGHT"]),
        ({"imageWidth": 0}, ["INVALID_IMAGE_SIZE"]),
        ({"imageWidth": 9000}, ["INVALID_IMAGE_SIZE"]),
        ({"imageWidth": "32"}, ["INVALID_IMAGE_SIZE"]),
        ({"imageBackground": "not-a-colour"}, ["INVALID_IMAGE_BACKGROUND"]),
        ({"transparentBackground": "yes"}, ["INVALID_TRANSPARENT_BACKGROUND"]),
        ({"turntable": None}, ["MISSING_TURNTABLE"]),
        ({"turntable": {"imageCount": None}}, ["MISSING_TURNTABLE_IMAGE_COUNT"]),
        ({"turntable": {"frameRate": None}}, ["MISSING_TURNTABLE_FRAME_RATE"]),
        (
            {"turntable": {"width": None, "height": None}},
            ["MISSING_TURNTABLE_WIDTH", "MISSING_TURNTABLE_HEIGHT"],
        ),
        ({"turntable": {"imageCount": 3601}}, ["INVALID_IMAGE_COUNT"]),
        ({"turntable": {"imageCount": 0}}, ["INVALID_IMAGE_COUNT"]),
        ({"turntable": {"frameRate": 0}}, ["INVALID_FRAME_RATE"]),
        ({"turntable": {"width": 4097}}, ["INVALID_TURNTABLE_SIZE"]),
        ({"turntable": {"imageCount": 3600, "width": 4096, "height": 4096}}, ["TURNTABLE_TOO_LARGE"]),
        ({"imageBackground": "white"}, ["INVALID_IMAGE_BACKGROUND"]),
        ({"turntable": {"background": 7}}, ["INVALID_TURNTABLE_BACKGROUND"]),
        ({"turntable": {"includeGif": "no"}}, ["INVALID_INCLUDE_GIF"]),
        ({"imageFormat": "BMP", "imageWidth": None}, ["MISSING_IMAGE_WIDTH", "NOT_SUPPORTED_IMAGE_FORMAT"]),
    ],
)
def test_invalid_bodies_are_400_with_every_code(api: Api, change: dict, codes: list[str]) -> None:
    body = {
        "productUuids": [SHOE],
        "imageWidth": 32,
        "imageHeight": 24,
        "imageFormat": "PNG",
        "turntable": {"includeGif": False, "imageCount": 4, "frameRate": 2, "width": 32, "height": 32},
    }
    for key, value in change.items():
        if key == "turntable" and value is not None:
            for k, v in value.items():
                if v is None:
                    del body["turntable"][k]
                else:
                    body["turntable"][k] = v
        elif value is None:
            del body[key]
        else:
            body[key] = value
    answer = api.post("/v1/products/renders", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"success": False, "errors": codes, "response": None}


@pytest.mark.parametrize("uuids", [None, [], "not-a-list"])
def test_missing_product_uuids_is_400(api: Api, uuids) -> None:
    body = {
        "imageWidth": 32,
        "imageHeight": 24,
        "imageFormat": "PNG",
        "turntable": {"includeGif": False, "imageCount": 4, "frameRate": 2, "width": 32, "height": 32},
    }
    if uuids is not None:
        body["productUuids"] = uuids
    answer = api.post("/v1/products/renders", json=body)
    assert (answer.status_code, answer.json()["errors"]) == (400, ["MISSING_PRODUCT_UUID"])


def test_malformed_json_is_400(api: Api) -> None:
    answer = api.post("/v1/products/renders", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["errors"]) == (400, ["BAD_REQUEST"])


def test_non_string_uuid_is_an_invalid_product(api: Api) -> None:
    answer = api.render(SHOE, 42)  # type: ignore[arg-type]
    assert answer.json()["response"]["errors"] == {"42": "INVALID_PRODUCT"}
    assert api.sandbox.wait_idle(timeout=20)


def test_foreign_organization_in_body_is_403(api: Api) -> None:
    assert api.render(SHOE, organizationUuid="someone-else").status_code == 403


def test_renders_need_a_token(api: Api) -> None:
    assert api.post("/v1/products/renders", token="", json={}).status_code == 403  # revoked_token_status


def test_results_are_real_files_of_the_requested_spec(fresh_api: Api) -> None:
    fresh_api.rendered(
        BOOT,
        imageFormat="webp",
        imageWidth=40,
        imageHeight=30,
        turntable={"imageCount": 5, "frameRate": 10, "width": 48, "height": 32, "includeGif": True},
    )
    files = {a["name"]: a for a in fresh_api.attachments(BOOT)}
    assert set(files) == {
        "chelsea-boot-tan-render.webp",
        "chelsea-boot-tan-turntable.mp4",
        "chelsea-boot-tan-turntable.gif",
    }
    still = fresh_api.download(files["chelsea-boot-tan-render.webp"])
    assert still.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(still.content))
    assert (image.format, image.size) == ("WEBP", (40, 30))
    video = fresh_api.download(files["chelsea-boot-tan-turntable.mp4"])
    assert video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content)
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert len(frames) == 5
        assert stream.average_rate == 10
        assert (frames[0].width, frames[0].height) == (48, 32)
    gif = Image.open(io.BytesIO(fresh_api.download(files["chelsea-boot-tan-turntable.gif"]).content))
    assert (gif.format, gif.size, gif.n_frames) == ("GIF", (48, 32), 5)


@pytest.mark.parametrize("fmt, pil", [("PNG", "PNG"), ("JPG", "JPEG")])
def test_still_formats(fresh_api: Api, fmt: str, pil: str) -> None:
    fresh_api.rendered(SHOE, imageFormat=fmt, turntable={"includeGif": False})
    [still] = fresh_api.attachments(SHOE, "RENDER")
    assert Image.open(io.BytesIO(fresh_api.download(still).content)).format == pil


def test_rerender_replaces_everything_and_drops_the_gif(fresh_api: Api) -> None:
    fresh_api.rendered(SHOE, turntable={"includeGif": True})
    first = {a["uuid"]: a["name"] for a in fresh_api.attachments(SHOE)}
    assert sorted(first.values()) == [
        "trail-runner-gtx-render.png",
        "trail-runner-gtx-turntable.gif",
        "trail-runner-gtx-turntable.mp4",
    ]
    fresh_api.rendered(SHOE, turntable={"includeGif": False})
    second = {a["uuid"]: a["name"] for a in fresh_api.attachments(SHOE)}
    assert sorted(second.values()) == ["trail-runner-gtx-render.png", "trail-runner-gtx-turntable.mp4"]
    assert not set(first) & set(second)  # every earlier attachment was replaced
    assert [a["name"] for a in fresh_api.attachments(SHOE, "TURNTABLE")] == ["trail-runner-gtx-turntable.mp4"]


def test_newer_trigger_supersedes_a_running_one(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(job_pending_seconds=0.2, job_processing_seconds=0.2)
    api = api_factory(sb)
    api.login()
    assert api.render(SHOE, turntable={"includeGif": True}).status_code == 200
    assert api.render(SHOE, turntable={"includeGif": False}, imageFormat="JPG").status_code == 200
    assert sb.wait_idle(timeout=20)
    names = sorted(a["name"] for a in api.attachments(SHOE))
    assert names == ["trail-runner-gtx-render.jpg", "trail-runner-gtx-turntable.mp4"]


def test_attachments_appear_only_when_the_job_completes(sandbox_factory, api_factory) -> None:
    sb = sandbox_factory(job_pending_seconds=0.3, job_processing_seconds=0.3)
    api = api_factory(sb)
    api.login()
    api.render(SHOE)
    assert api.attachments(SHOE) == []
    assert sb.wait_idle(timeout=20)
    assert len(api.attachments(SHOE)) == 3


def test_backgrounds_and_transparency_reach_the_files(fresh_api: Api) -> None:
    fresh_api.rendered(
        SHOE,
        imageBackground="#F4F4F4",
        transparentBackground=False,
        turntable={"background": "#fff", "includeGif": False},
    )
    still = Image.open(io.BytesIO(fresh_api.download(fresh_api.attachments(SHOE, "RENDER")[0]).content))
    assert still.convert("RGB").getpixel((0, 0)) == (244, 244, 244)  # a corner shows the background
    fresh_api.rendered(SHOE, transparentBackground=True)
    cutout = Image.open(io.BytesIO(fresh_api.download(fresh_api.attachments(SHOE, "RENDER")[0]).content))
    assert cutout.mode == "RGBA" and cutout.getpixel((0, 0))[3] == 0
