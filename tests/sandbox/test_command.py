"""``reconciler sandbox``: option merging, a real server process, clean shutdown on a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli.sandbox import build_config, sandbox_command
from reconciler.sandbox.config import DEFAULT_ACCESS_TOKEN
from reconciler.sandbox.readings import Readings

from .helpers import SHOE


def _options(**given):
    names = [
        "config",
        "access_token",
        "seed",
        "job_pending_seconds",
        "job_processing_seconds",
        "workers",
        "auto_create_products",
        "rate_429",
        "retry_after",
        "rate_500",
        "rate_503",
        "latency",
        "job_failure_rate",
        "fail_product",
        "signed_url_ttl",
        "webhook_drop_rate",
        "webhook_duplicate_rate",
        "fault_seed",
        "reading",
    ]
    return {name: given.get(name) for name in names}


def test_flags_win_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text(
        "job_pending_seconds: 1.5\nworkers: 3\nfaults:\n  rate_429: 0.1\n  rate_500: 0.2\n"
        f"  fail_products: [{SHOE}]\n"
    )
    merged = build_config(
        _options(config=config, rate_429=0.3, fail_product=("other",), job_processing_seconds=0.1)
    )
    assert (merged.job_pending_seconds, merged.job_processing_seconds, merged.workers) == (1.5, 0.1, 3)
    assert (merged.faults.rate_429, merged.faults.rate_500) == (0.3, 0.2)
    assert merged.faults.fail_products == frozenset({SHOE, "other"})
    json_config = tmp_path / "sandbox.json"
    json_config.write_text(json.dumps({"signed_url_ttl_seconds": 5, "faults": {"webhook_drop_rate": 0.5}}))
    from_json = build_config(_options(config=json_config))
    assert (from_json.signed_url_ttl_seconds, from_json.faults.webhook_drop_rate) == (5, 0.5)


def test_defaults_without_flags() -> None:
    config = build_config(_options())
    assert config.resolved_access_token == DEFAULT_ACCESS_TOKEN
    assert config.faults.rate_429 == 0 and config.auto_create_products is False
    assert config.readings == Readings()


def test_readings_from_the_config_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text(
        "readings:\n  entity_type_filter: honoured\n  revoked_token_status: 401\n  download: comments\n"
    )
    merged = build_config(
        _options(
            config=config,
            reading=("download=signed-url-origin", "manual_renders_replaced=true", "throttle_status=403"),
        )
    )
    assert merged.readings == Readings(
        entity_type_filter="honoured",
        revoked_token_status=401,
        download="signed-url-origin",
        manual_renders_replaced=True,
        throttle_status=403,
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "download=ftp",
            "reading download cannot be 'ftp'; choose one of: both, comments, signed-url, signed-url-origin",
        ),
        ("entity_type=honoured", "unknown reading 'entity_type'"),
        ("honoured", "expected NAME=VALUE"),
        ("throttle_status=418", "choose one of: 429, 403, 400, 409"),
    ],
)
def test_bad_readings_are_clear_errors(tmp_path: Path, flag: str, message: str) -> None:
    result = CliRunner().invoke(sandbox_command, ["--reading", flag, "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    "text, message",
    [
        ("job_pendng_seconds: 1\n", "unknown sandbox option(s): job_pendng_seconds"),
        ("faults:\n  rate_429: 2\n", "fault rate_429 must be between 0 and 1"),
        ("- a list\n", "expected a mapping"),
        ("readings:\n  timestamp: utc\n", "unknown reading(s): timestamp"),
        ("readings:\n  timestamps: local\n", "reading timestamps cannot be 'local'"),
    ],
)
def test_bad_config_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = CliRunner().invoke(sandbox_command, ["--config", str(config), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert message in result.output


def test_bad_flag_values_are_usage_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(sandbox_command, ["--rate-429", "1.5", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--rate-429" in result.output


def test_serves_until_interrupted(tmp_path: Path) -> None:
    # Ctrl-C's handler, whatever the test was started from: a shell's background job (cmd &)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it.
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from reconciler.cli.sandbox import sandbox_command; sandbox_command()"
    )
    args = [
        sys.executable,
        "-c",
        code,
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--job-pending-seconds",
        "0.01",
        "--rate-503",
        "0",
        "--reading",
        "entity_type_filter=honoured",
        "--reading",
        "revoked_token_status=401",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("Press Ctrl-C"):
                    break
            banner = "".join(lines)
            url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]
            assert DEFAULT_ACCESS_TOKEN in banner
            assert re.search(r"organization uuid:\s+[0-9a-f-]{36}", banner)
            assert re.search(r"storage \(signed URLs\): http://127\.0\.0\.1:\d+", banner)
            assert "readings:              entity_type_filter=honoured,revoked_token_status=401" in banner
            assert re.search(
                r"content-manager@sandbox.local +CLIENT_ORGANIZATION_CONTENT_MANAGER +vntana-sandbox-", banner
            )
            with httpx.Client(base_url=url) as http:
                login = http.post(
                    "/v1/auth/login/token", json={"personal-access-token": DEFAULT_ACCESS_TOKEN}
                )
                assert login.status_code == 200
                assert http.get("/v1/organizations").status_code == 401  # the reading took effect
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "Sandbox stopped." in out
    assert (tmp_path / "data" / "sandbox.sqlite3").exists()


def test_custom_access_token_is_not_echoed(tmp_path: Path) -> None:
    code = "from reconciler.cli.sandbox import sandbox_command; sandbox_command()"
    args = [
        sys.executable,
        "-c",
        code,
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--access-token",
        "s3cret-key",
    ]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            banner = ""
            for line in proc.stdout:
                banner += line
                if line.startswith("Press Ctrl-C"):
                    break
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "s3cret-key" not in banner and "--access-token" in banner
    assert proc.returncode == 0


def test_port_in_use_is_a_clear_error(sandbox, tmp_path: Path) -> None:
    result = CliRunner().invoke(sandbox_command, ["--port", str(sandbox.port), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "did not start" in result.output
