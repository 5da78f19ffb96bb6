"""Readings: values, defaults, parsing, the e2e matrix, and switching a running sandbox."""

from __future__ import annotations

import pytest

from reconciler.sandbox.readings import CHOICES, HOSTILE, MATRIX, Readings
from reconciler.sandbox.server import SandboxConfig

from .helpers import SHOE, Api


def test_defaults_follow_the_guides_and_vntanas_client() -> None:
    assert Readings().as_dict() == {
        "entity_type_filter": "ignored",
        "revoked_token_status": 403,
        "download": "both",
        "webhook_paths": "guide",
        "webhook_clients": "slugs",
        "timestamps": "zoneless",
        "error_entries": "strings",
        "throttle_status": 429,
        "manual_renders_replaced": False,
        "webhook_body": "compact",
    }
    assert all(getattr(Readings(), name) == values[0] for name, values in CHOICES.items())
    assert SandboxConfig().readings == Readings()


def test_values_are_normalised_so_text_and_python_agree() -> None:
    assert Readings(revoked_token_status="401") == Readings(revoked_token_status=401)  # type: ignore[arg-type]
    assert Readings(manual_renders_replaced="true") == Readings(manual_renders_replaced=True)  # type: ignore[arg-type]
    assert Readings.parse(["throttle_status=403", "manual-renders-replaced=yes"]) == Readings(
        throttle_status=403, manual_renders_replaced=True
    )
    assert Readings.from_mapping({"download": "comments"}).download == "comments"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"download": "ftp"}, "reading download cannot be 'ftp'"),
        ({"revoked_token_status": 402}, "choose one of: 403, 401 (default 403)"),
        ({"revoked_token_status": True}, "reading revoked_token_status cannot be True"),
        ({"manual_renders_replaced": "maybe"}, "choose one of: false, true"),
    ],
)
def test_bad_values_name_the_switch_and_the_choices(changes, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Readings(**changes)


def test_unknown_switches_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown reading"):
        Readings.from_mapping({"entity_type": "honoured"})
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        Readings.parse(["honoured"])


def test_the_matrix_is_one_axis_at_a_time_plus_hostile() -> None:
    assert MATRIX[0] == Readings() and MATRIX[-1] == HOSTILE == Readings.hostile()
    assert Readings.all_combinations() == list(MATRIX)
    singles = MATRIX[1:-1]
    assert len(singles) == sum(len(v) - 1 for v in CHOICES.values())
    assert all(len(r.non_defaults()) == 1 for r in singles)
    covered = {(k, v) for r in singles for k, v in r.non_defaults().items()}
    assert covered == {(k, v) for k, values in CHOICES.items() for v in values[1:]}
    assert set(HOSTILE.non_defaults()) == set(CHOICES)  # every switch away from its default
    assert len({r.label for r in MATRIX}) == len(MATRIX)
    assert (Readings().label, HOSTILE.label) == ("default", "hostile")
    assert Readings(download="comments").label == "download=comments"


def test_time_formats() -> None:
    assert Readings().time(1693249433.198) == "2023-08-28T19:03:53.198"  # upload-attachments.md's example
    assert Readings(timestamps="utc").time(1693249433.198) == "2023-08-28T19:03:53.198Z"
    assert Readings().time(1655734935.488732, precision="microseconds") == "2022-06-20T14:22:15.488732"


def test_set_readings_switches_a_running_sandbox(fresh_api: Api) -> None:
    sb = fresh_api.sandbox
    assert fresh_api.get(f"/v1/products/{SHOE}", token="").status_code == 403
    sb.set_readings(Readings(revoked_token_status=401, timestamps="utc", error_entries="objects"))
    assert sb.readings.label == "revoked_token_status=401,timestamps=utc,error_entries=objects"
    answer = fresh_api.get(f"/v1/products/{SHOE}", token="")
    assert answer.status_code == 401
    assert answer.json()["errors"] == [{"code": "UNAUTHORIZED", "message": "missing token"}]
    assert fresh_api.get(f"/v1/products/{SHOE}").json()["response"]["created"].endswith("Z")
    with pytest.raises(TypeError):
        sb.set_readings({"download": "comments"})  # type: ignore[arg-type]


def test_error_objects_reach_the_render_trigger(fresh_api: Api) -> None:
    fresh_api.sandbox.set_readings(Readings(error_entries="objects"))
    unknown = "a0000000-0000-0000-0000-00000000dead"
    answer = fresh_api.render(SHOE, unknown)
    assert answer.status_code == 200
    assert answer.json()["response"]["errors"] == {
        unknown: {"code": "PRODUCT_NOT_FOUND", "message": "Product not found"}
    }
    none = fresh_api.render(unknown)
    assert none.status_code == 404
    assert none.json()["errors"] == [{"code": "PRODUCT_NOT_FOUND", "message": "Product not found"}]
    assert fresh_api.sandbox.wait_idle(timeout=20)
