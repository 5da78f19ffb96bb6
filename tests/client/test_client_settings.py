"""resolve_settings: precedence flags > environment > config file > defaults, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.settings import DEFAULT_API_URL, ClientSettings, find_config_file, resolve_settings

TOKEN = "pat-0123456789-secret"
ENV = {"VNTANA_API_TOKEN": TOKEN}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reconciler.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_with_only_the_token_in_the_environment() -> None:
    s = resolve_settings({}, ENV, None)
    assert s.api_url == DEFAULT_API_URL
    assert s.token.get_secret_value() == TOKEN
    assert (s.organization_uuid, s.client_uuid) == (None, None)
    assert (s.max_attempts, s.max_elapsed, s.max_concurrency) == (8, 120.0, 8)


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "api_url: http://file.example\norganization_uuid: org-file\nclient_uuid: ws-file\n"
        "max_concurrency: 3\n",
    )
    env = {**ENV, "VNTANA_API_URL": "http://env.example", "VNTANA_ORGANIZATION_UUID": "org-env"}
    s = resolve_settings({"api_url": "http://flag.example/", "client_uuid": None}, env, cfg)
    assert s.api_url == "http://flag.example"  # flag; trailing slash dropped
    assert s.organization_uuid == "org-env"  # environment beats file
    assert s.client_uuid == "ws-file"  # a None flag means "not given"
    assert s.max_concurrency == 3


def test_empty_environment_values_count_as_unset(tmp_path: Path) -> None:
    cfg = write(tmp_path, "organization_uuid: org-file\n")
    s = resolve_settings({}, {**ENV, "VNTANA_ORGANIZATION_UUID": "  "}, cfg)
    assert s.organization_uuid == "org-file"


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, {}, None)
    assert str(info.value) == "no VNTANA API token: set the environment variable VNTANA_API_TOKEN"


def test_token_in_config_file_is_refused_with_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "api_url: http://x.example\n# a comment\ntoken: abc\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, ENV, cfg)
    assert str(info.value) == f"{cfg}:3: 'token': the API token must not be stored in the config file"
    assert "VNTANA_API_TOKEN" in (info.value.hint or "")


def test_token_env_names_where_the_token_lives(tmp_path: Path) -> None:
    cfg = write(tmp_path, "token_env: MY_VNTANA_KEY\n")
    assert resolve_settings({}, {"MY_VNTANA_KEY": "k1"}, cfg).token.get_secret_value() == "k1"
    # The standard variable still wins, as the environment outranks the file.
    assert resolve_settings({}, {"MY_VNTANA_KEY": "k1", **ENV}, cfg).token.get_secret_value() == TOKEN
    with pytest.raises(ConfigError, match="MY_VNTANA_KEY, named by token_env"):
        resolve_settings({}, {}, cfg)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "api_url: http://x.example\norganization_uuid: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, ENV, cfg)
    assert str(info.value).startswith(f"{cfg}:3:")
    assert "invalid YAML" in str(info.value)


def test_invalid_value_names_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "api_url: http://x.example\nmax_attempts: lots\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, ENV, cfg)
    assert f"{cfg}:2: max_attempts:" in str(info.value)


def test_invalid_url_from_environment_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match="environment variable VNTANA_API_URL: api_url: Value error, must start"
    ):
        resolve_settings({}, {**ENV, "VNTANA_API_URL": "api.example.com"}, None)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve_settings({}, ENV, tmp_path / "nope.yaml")


def test_an_unknown_or_misspelt_setting_is_an_error_naming_file_line_and_the_closest_key(
    tmp_path: Path,
) -> None:
    cfg = write(tmp_path, "client_uuid: ws\norganisation_uuid: org\n")
    with pytest.raises(ConfigError) as caught:
        resolve_settings({}, ENV, cfg)
    assert str(caught.value) == f"{cfg}:2: unknown setting 'organisation_uuid'"
    assert caught.value.hint == "did you mean 'organization_uuid'?"


def test_default_config_file_lookup(tmp_path: Path) -> None:
    assert find_config_file(tmp_path) is None
    cfg = write(tmp_path, "{}\n")
    assert find_config_file(tmp_path) == cfg


def test_token_is_masked_in_repr() -> None:
    s = ClientSettings(token=TOKEN)
    assert TOKEN not in repr(s) and TOKEN not in str(s)


def test_download_route_and_origin_come_from_flag_environment_or_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "download_route: comments\norigin: https://studio.example/\nwebhook_paths: yaml\n")
    s = resolve_settings({}, ENV, cfg)
    assert (s.download_route, s.origin, s.webhook_paths) == ("comments", "https://studio.example", "yaml")
    s = resolve_settings({}, {**ENV, "VNTANA_DOWNLOAD_ROUTE": "signed-url"}, cfg)
    assert s.download_route == "signed-url"
    assert (
        resolve_settings(
            {"download_route": "auto"}, {**ENV, "VNTANA_DOWNLOAD_ROUTE": "signed-url"}, cfg
        ).download_route
        == "auto"
    )
    defaults = resolve_settings({}, ENV, None)
    assert (defaults.download_route, defaults.origin, defaults.webhook_paths) == (
        "auto",
        "https://platform.vntana.com",
        "auto",
    )


def test_an_unknown_download_route_names_its_source_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "api_url: http://x.example\ndownload_route: ftp\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, ENV, cfg)
    assert str(info.value) == (
        f"invalid client settings:\n{cfg}:2: download_route: Input should be 'auto', "
        "'comments' or 'signed-url'"
    )
    with pytest.raises(ConfigError, match="origin: Value error, must be an origin"):
        resolve_settings({}, {**ENV, "VNTANA_ORIGIN": "https://platform.vntana.com/app"}, None)


def test_save_settings_keeps_comments_and_other_keys_and_never_writes_a_token(tmp_path: Path) -> None:
    from reconciler.settings import save_settings

    cfg = write(tmp_path, "# team settings\napi_url: http://x.example  # staging\ndownload_route: auto\n")
    changed = save_settings(
        cfg, {"download_route": "comments", "webhook_paths": "guide", "organization_uuid": "o"}
    )
    assert changed == ["download_route", "webhook_paths", "organization_uuid"]
    text = cfg.read_text()
    assert text.startswith(
        "# team settings\napi_url: http://x.example  # staging\ndownload_route: comments\n"
    )
    assert resolve_settings({}, ENV, cfg).download_route == "comments"
    assert save_settings(cfg, {"download_route": "comments"}) == []  # nothing to change: file untouched
    with pytest.raises(ConfigError, match="refusing to save token"):
        save_settings(cfg, {"token": "pat"})
    fresh = tmp_path / "new" / "reconciler.yaml"
    fresh.parent.mkdir()
    assert save_settings(fresh, {"download_route": "signed-url"}) == ["download_route"]
    assert fresh.read_text() == "download_route: signed-url\n"
    broken = write(tmp_path, "download_route: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        save_settings(broken, {"download_route": "comments"})
    assert broken.read_text() == "download_route: [\n"
