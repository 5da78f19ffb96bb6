"""What files reveal about their spec: the sandbox's real media in, exact fields and unknowns out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.renderfiles import (
    UNKNOWABLE,
    InferredSpec,
    InspectError,
    Mismatch,
    infer_spec,
    inspect_mp4,
    inspect_still,
    sniff,
)
from reconciler.sandbox import media
from reconciler.spec import RenderSpec

UUID = "5a1f3c1e-0000-4000-8000-00000000000a"


def _spec(**over: object) -> dict[str, object]:
    turntable = {"includeGif": True, "imageCount": 6, "frameRate": 12, "width": 32, "height": 24}
    turntable.update(over.pop("turntable", {}))  # type: ignore[arg-type]
    data = {"imageWidth": 40, "imageHeight": 30, "imageFormat": "PNG", "turntable": turntable, **over}
    return RenderSpec.model_validate(data).canonical()


@pytest.mark.parametrize(
    ("fmt", "width", "height"), [("PNG", 40, 30), ("JPG", 17, 33), ("WEBP", 64, 16), ("PNG", 16, 16)]
)
def test_still_reveals_format_and_exact_size(fmt: str, width: int, height: int) -> None:
    data = media.render_still("chair", UUID, width=width, height=height, fmt=fmt)
    assert inspect_still(data) == {"imageFormat": fmt, "imageWidth": width, "imageHeight": height}
    assert sniff(data[:16]) == fmt


def test_transparent_png_still_is_still_just_png_and_size() -> None:
    data = media.render_still("bag", UUID, width=20, height=20, fmt="PNG", transparent=True)
    assert inspect_still(data) == {"imageFormat": "PNG", "imageWidth": 20, "imageHeight": 20}


@pytest.mark.parametrize(
    ("count", "rate", "width", "height"),
    [
        (4, 4, 32, 32),
        (24, 30, 33, 17),
        (7, 1, 48, 16),
        (13, 60, 16, 40),
        (2, 25, 20, 20),
    ],
)
def test_mp4_reveals_decoded_frame_count_rate_and_size(
    count: int, rate: int, width: int, height: int
) -> None:
    mp4, gif = media.render_turntable(
        "bag", UUID, image_count=count, frame_rate=rate, width=width, height=height
    )
    assert gif is None
    found = inspect_mp4(mp4)
    assert found == {
        "turntable.imageCount": count,
        "turntable.frameRate": rate,
        "turntable.width": width,
        "turntable.height": height,
    }
    assert isinstance(found["turntable.frameRate"], int)
    assert sniff(mp4[:16]) == "MP4"


@pytest.mark.parametrize("with_gif", [True, False])
def test_infer_spec_from_a_full_set_matches_the_spec_that_made_it(with_gif: bool, tmp_path: Path) -> None:
    spec = _spec(imageFormat="WEBP", imageBackground="#F4F4F4", turntable={"includeGif": with_gif})
    tt = spec["turntable"]
    still = media.render_still("shoe", UUID, width=40, height=30, fmt="WEBP", background="#F4F4F4")
    mp4, gif = media.render_turntable(
        "shoe", UUID, image_count=6, frame_rate=12, width=32, height=24, include_gif=with_gif
    )
    assert (gif is not None) == with_gif and tt["includeGif"] == with_gif  # type: ignore[index]
    (tmp_path / "s.webp").write_bytes(still)
    inferred = infer_spec(still=tmp_path / "s.webp", mp4=io.BytesIO(mp4), gif=gif is not None)
    assert inferred.known == {
        "imageFormat": "WEBP",
        "imageWidth": 40,
        "imageHeight": 30,
        "turntable.includeGif": with_gif,
        "turntable.imageCount": 6,
        "turntable.frameRate": 12,
        "turntable.width": 32,
        "turntable.height": 24,
    }
    assert inferred.unknown == [
        "imageBackground",
        "transparentBackground",
        "turntable.background",
        "turntable.transparentBackground",
    ]
    assert inferred.compare(spec) == []
    assert inferred.substitute(spec) == spec


def test_backgrounds_are_never_guessed_even_when_set() -> None:
    spec = _spec(imageFormat="PNG", transparentBackground=True, turntable={"background": "#000000"})
    still = media.render_still("cap", UUID, width=40, height=30, fmt="PNG", transparent=True)
    inferred = infer_spec(still=still, gif=False)
    assert not set(UNKNOWABLE) & set(inferred.known)
    assert set(UNKNOWABLE) <= set(inferred.unknown)
    # the turntable's own fields stay unknown without an MP4, but the GIF's absence is known
    assert {"turntable.imageCount", "turntable.frameRate", "turntable.width", "turntable.height"} <= set(
        inferred.unknown
    )
    assert inferred.compare(spec) == [Mismatch("turntable.includeGif", False, True)]


def test_compare_lists_every_mismatch_field_by_field_and_substitute_applies_only_known_fields() -> None:
    spec = _spec(imageBackground="#FFFFFF")
    still = media.render_still("box", UUID, width=64, height=30, fmt="JPG")
    mp4, _ = media.render_turntable("box", UUID, image_count=8, frame_rate=12, width=32, height=24)
    inferred = infer_spec(still=still, mp4=mp4, gif=False)
    assert inferred.compare(spec) == [  # in reading order: still, then turntable
        Mismatch("imageFormat", "JPG", "PNG"),
        Mismatch("imageWidth", 64, 40),
        Mismatch("turntable.includeGif", False, True),
        Mismatch("turntable.imageCount", 8, 6),
    ]
    platform = inferred.substitute(spec)
    assert platform["imageFormat"] == "JPG" and platform["imageWidth"] == 64
    assert platform["turntable"]["imageCount"] == 8 and platform["turntable"]["includeGif"] is False
    assert platform["imageBackground"] == "#FFFFFF"  # unknown: the manifest's value, unchanged
    assert spec["imageWidth"] == 40  # the manifest's spec is not modified
    assert RenderSpec.model_validate(platform).canonical() == platform


def test_nothing_given_means_everything_unknown() -> None:
    inferred = infer_spec()
    assert inferred.known == {}
    assert inferred.unknown[:3] == ["imageFormat", "imageWidth", "imageHeight"]
    assert len(inferred.unknown) == 12
    assert InferredSpec().compare(_spec()) == []


def test_files_of_the_wrong_kind_or_damaged_are_errors_not_guesses(tmp_path: Path) -> None:
    still = media.render_still("box", UUID, width=20, height=20, fmt="JPG")
    mp4, gif = media.render_turntable(
        "box", UUID, image_count=4, frame_rate=4, width=16, height=16, include_gif=True
    )
    with pytest.raises(InspectError, match="is not an MP4 \\(it looks like JPG\\)"):
        inspect_mp4(still)
    with pytest.raises(InspectError, match="is not an MP4 \\(it looks like GIF\\)"):
        inspect_mp4(gif or b"")
    with pytest.raises(InspectError, match="not an image Pillow can read"):
        inspect_still(mp4)
    with pytest.raises(
        InspectError, match="is not a readable video \\(Invalid data found when processing input\\)"
    ):
        inspect_mp4(mp4[: len(mp4) // 3])
    with pytest.raises(InspectError, match="cannot read"):
        inspect_still(tmp_path / "missing.png")
    assert sniff(b"nothing here") is None
