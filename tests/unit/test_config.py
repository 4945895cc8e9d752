"""Settings: Kernel Gateway's environment names, defaults and spellings; CLI flags over environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.cli import load_settings, main
from app.config import Personality, Settings

KG_DEFAULTS: dict[str, tuple[str, Any]] = {
    # env name: (field, KG 3.0.1's default as the field holds it)
    "KG_IP": ("ip", "127.0.0.1"),
    "KG_PORT": ("port", 8888),
    "KG_PORT_RETRIES": ("port_retries", 50),
    "KG_BASE_URL": ("base_url", ""),
    "KG_AUTH_TOKEN": ("auth_token", None),
    "KG_ALLOW_ORIGIN": ("allow_origin", ""),
    "KG_ALLOW_CREDENTIALS": ("allow_credentials", ""),
    "KG_ALLOW_HEADERS": ("allow_headers", ""),
    "KG_ALLOW_METHODS": ("allow_methods", ""),
    "KG_EXPOSE_HEADERS": ("expose_headers", ""),
    "KG_MAX_AGE": ("max_age", ""),
    "KG_MAX_KERNELS": ("max_kernels", None),
    "KG_PRESPAWN_COUNT": ("prespawn_count", None),
    "KG_SEED_URI": ("seed_uri", None),
    "KG_DEFAULT_KERNEL_NAME": ("default_kernel_name", ""),
    "KG_FORCE_KERNEL_NAME": ("force_kernel_name", ""),
    "KG_LIST_KERNELS": ("list_kernels", False),
    "KG_ENV_WHITELIST": ("env_whitelist", []),
    "KG_ENV_PROCESS_WHITELIST": ("env_process_whitelist", []),
    "KG_API": ("api", ["jupyter-websocket"]),
    "KG_CERTFILE": ("certfile", None),
    "KG_KEYFILE": ("keyfile", None),
    "KG_CLIENT_CA": ("client_ca", None),
    "KG_TRUST_XHEADERS": ("trust_xheaders", False),
    "KG_WS_PING_INTERVAL_SECS": ("ws_ping_interval", 30.0),
}

KG_VALUES: dict[str, tuple[str, Any]] = {
    # env name: (value in the environment, value the field then holds)
    "KG_IP": ("0.0.0.0", "0.0.0.0"),
    "KG_PORT": ("9123", 9123),
    "KG_PORT_RETRIES": ("0", 0),
    "KG_BASE_URL": ("/gw/", "/gw"),
    "KG_AUTH_TOKEN": ("s3cret", "s3cret"),
    "KG_ALLOW_ORIGIN": ("https://a.example", "https://a.example"),
    "KG_ALLOW_CREDENTIALS": ("true", "true"),
    "KG_ALLOW_HEADERS": ("Content-Type,X-A", "Content-Type,X-A"),
    "KG_ALLOW_METHODS": ("GET,POST", "GET,POST"),
    "KG_EXPOSE_HEADERS": ("X-B", "X-B"),
    "KG_MAX_AGE": ("600", "600"),
    "KG_MAX_KERNELS": ("7", 7),
    "KG_PRESPAWN_COUNT": ("2", 2),
    "KG_SEED_URI": ("file:///tmp/seed.ipynb", "file:///tmp/seed.ipynb"),
    "KG_DEFAULT_KERNEL_NAME": ("bash", "bash"),
    "KG_FORCE_KERNEL_NAME": ("python3", "python3"),
    "KG_LIST_KERNELS": ("True", True),
    "KG_ENV_WHITELIST": ("A, B ,C", ["A", "B", "C"]),
    "KG_ENV_PROCESS_WHITELIST": ("HOME,LANG", ["HOME", "LANG"]),
    "KG_API": ("kernel_gateway.jupyter_websocket", ["jupyter-websocket"]),
    "KG_CERTFILE": ("/c.pem", "/c.pem"),
    "KG_KEYFILE": ("/k.pem", "/k.pem"),
    "KG_CLIENT_CA": ("/ca.pem", "/ca.pem"),
    "KG_TRUST_XHEADERS": ("True", True),
    "KG_WS_PING_INTERVAL_SECS": ("5", 5.0),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KG_*/FASTKG_* variable from the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.startswith(("KG_", "FASTKG_")):
            monkeypatch.delenv(name)


def value_of(settings: Settings, field: str) -> Any:
    value = getattr(settings, field)
    return settings.token if field == "auth_token" and value is not None else value


def test_every_kg_option_is_covered() -> None:
    aliases = {
        alias
        for field in Settings.model_fields.values()
        for alias in getattr(field.validation_alias, "choices", [])
        if isinstance(alias, str) and alias.startswith("KG_")
    }
    assert set(KG_DEFAULTS) <= aliases
    assert set(KG_VALUES) == set(KG_DEFAULTS)


@pytest.mark.parametrize("env_name", sorted(KG_DEFAULTS))
def test_kg_default(env_name: str) -> None:
    field, default = KG_DEFAULTS[env_name]
    assert value_of(Settings(), field) == default


@pytest.mark.parametrize("env_name", sorted(KG_VALUES))
def test_kg_env_name_maps_to_setting(env_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    field, _ = KG_DEFAULTS[env_name]
    raw, expected = KG_VALUES[env_name]
    monkeypatch.setenv(env_name, raw)
    assert value_of(Settings(), field) == expected


@pytest.mark.parametrize("env_name", sorted(KG_DEFAULTS))
def test_empty_value_means_unset(env_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    field, default = KG_DEFAULTS[env_name]
    monkeypatch.setenv(env_name, "")
    assert value_of(Settings(), field) == default


def test_empty_token_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_AUTH_TOKEN", "")
    assert Settings().token is None


def test_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_AUTH_TOKEN", "very-secret-value")
    settings = Settings()
    assert settings.token == "very-secret-value"
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings)


@pytest.mark.parametrize(("raw", "expected"), [("True", True), ("true", True), ("1", True), ("False", False)])
@pytest.mark.parametrize("env_name", ["KG_LIST_KERNELS", "KG_TRUST_XHEADERS"])
def test_boolean_spellings(env_name: str, raw: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name, raw)
    assert value_of(Settings(), KG_DEFAULTS[env_name][0]) is expected


def test_comma_lists_drop_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_ENV_WHITELIST", "A,,B, ,")
    assert Settings().env_whitelist == ["A", "B"]


@pytest.mark.parametrize("name", ["kernel_gateway.jupyter_websocket", "jupyter-websocket"])
def test_api_names(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_API", name)
    settings = Settings()
    assert settings.api == ["jupyter-websocket"]
    assert [p.value for p in settings.personalities] == ["jupyter-websocket"]


def test_unknown_api_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_API", "kernel_gateway.bogus")
    with pytest.raises(ValidationError, match="unknown API"):
        Settings()


def test_prespawn_above_max_kernels_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_MAX_KERNELS", "2")
    monkeypatch.setenv("KG_PRESPAWN_COUNT", "3")
    with pytest.raises(ValidationError, match="prespawn"):
        Settings()


def test_prespawn_equal_to_max_kernels_is_fine() -> None:
    settings = Settings(max_kernels=2, prespawn_count=2)
    assert (settings.max_kernels, settings.prespawn_count) == (2, 2)


def test_notebook_http_needs_a_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_API", "kernel_gateway.notebook_http")
    with pytest.raises(ValidationError, match="KG_SEED_URI"):
        Settings()


@pytest.mark.parametrize(
    ("env_name", "raw"),
    [("KG_PORT", "eighty"), ("KG_PORT", "70000"), ("KG_MAX_KERNELS", "0"), ("KG_PRESPAWN_COUNT", "-1")],
)
def test_invalid_values_are_errors(env_name: str, raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name, raw)
    with pytest.raises(ValidationError):
        Settings()


def test_fastkg_options_use_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTKG_WARM_POOL", "3")
    monkeypatch.setenv("FASTKG_MAX_REST_BODY", "2048")
    settings = Settings()
    assert settings.warm_pool == 3
    assert settings.max_rest_body == 2048
    assert Settings.model_fields["warm_pool"].default == 0
    assert Settings.model_fields["max_rest_body"].default == 1024 * 1024


@pytest.mark.parametrize(("raw", "expected"), [("off", False), ("false", False), ("on", True), ("1", True)])
def test_metrics_switch(raw: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().metrics is True
    monkeypatch.setenv("FASTKG_METRICS", raw)
    assert Settings().metrics is expected


def test_replay_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().replay_sessions, Settings().replay_bytes) == (1, 64 * 1024 * 1024)
    monkeypatch.setenv("FASTKG_REPLAY_SESSIONS", "3")
    monkeypatch.setenv("FASTKG_REPLAY_BYTES", "1048576")
    settings = Settings()
    assert (settings.replay_sessions, settings.replay_bytes) == (3, 1 << 20)
    monkeypatch.setenv("FASTKG_REPLAY_SESSIONS", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "9000")
    assert Settings(port=9001).port == 9001


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "9000")
    monkeypatch.setenv("KG_IP", "0.0.0.0")
    monkeypatch.setenv("KG_MAX_KERNELS", "4")
    settings = load_settings(["--port=9001", "--max-kernels", "5"])
    assert settings.port == 9001
    assert settings.max_kernels == 5
    assert settings.ip == "0.0.0.0"  # untouched by flags: from the environment


def test_cli_without_flags_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "9000")
    assert load_settings([]).port == 9000
    monkeypatch.delenv("KG_PORT")
    assert load_settings([]).port == 8888


def test_cli_accepts_kernel_gateway_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "9000")
    settings = load_settings(
        [
            "--KernelGatewayApp.port=9001",
            "--KernelGatewayApp.list_kernels=True",
            "--KernelGatewayApp.ws_ping_interval_secs=7",
            "--KernelGatewayApp.env_whitelist=A,B",
            "--JupyterWebsocketPersonality.list_kernels=True",
        ]
    )
    assert settings.port == 9001
    assert settings.list_kernels is True
    assert settings.ws_ping_interval == 7.0
    assert settings.env_whitelist == ["A", "B"]


def test_cli_accepts_kernel_gateways_short_aliases() -> None:
    """KG's own aliases (gatewayapp.py's `aliases`): --ip, --port, --port_retries, --api, --seed_uri,
    --keyfile, --certfile, --client-ca."""
    settings = load_settings(
        ["--port_retries=3", "--seed_uri=/tmp/seed.ipynb", "--client-ca=/ca.pem", "--ip", "127.0.0.2"]
    )
    assert settings.port_retries == 3
    assert settings.seed_uri == "/tmp/seed.ipynb"
    assert settings.client_ca == "/ca.pem"
    assert settings.ip == "127.0.0.2"


def test_cli_bare_boolean_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_LIST_KERNELS", "False")
    assert load_settings(["--list-kernels"]).list_kernels is True


def test_cli_token_flag_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_AUTH_TOKEN", "from-env")
    assert load_settings(["--auth-token=from-flag"]).token == "from-flag"


def test_cli_invalid_configuration_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api=bogus"]) != 0
    assert "bogus" in capsys.readouterr().err
    assert main(["--max-kernels=1", "--prespawn-count=2"]) != 0
    assert "prespawn" in capsys.readouterr().err


def test_cli_missing_seed_notebook_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.ipynb"
    assert main([f"--seed-uri={missing}", "--port=0"]) != 0
    err = capsys.readouterr().err
    assert err.strip(), "a clear message is printed"
    assert "Traceback" not in err


def test_cli_unknown_seed_kernelspec_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = tmp_path / "rest_unknown_spec.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {
                    "kernelspec": {"name": "no-such-kernel-xyz", "display_name": "x", "language": "python"}
                },
                "cells": [
                    {
                        "id": "a1",
                        "cell_type": "code",
                        "metadata": {},
                        "source": "x = 1",
                        "outputs": [],
                        "execution_count": None,
                    }
                ],
            }
        )
    )
    assert main([f"--seed-uri={notebook}", "--port=0"]) != 0
    assert "no-such-kernel-xyz" in capsys.readouterr().err


def test_plugin_api_names_are_kept_for_the_plugin_loader() -> None:
    settings = Settings(api="jupyter-websocket,mypkg.personality,echo-api")
    assert settings.api == ["jupyter-websocket", "mypkg.personality", "echo-api"]
    assert settings.personalities == [Personality.JUPYTER_WEBSOCKET]
    assert settings.plugin_apis == ["mypkg.personality", "echo-api"]
    assert Settings(api="echo").personalities == []


@pytest.mark.parametrize("name", ["bad name!", "mypkg..x", "kernel_gateway.custom", ".relative"])
def test_malformed_plugin_api_names_are_errors(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown API"):
        Settings(api=name)


def test_ssl_version_is_a_server_protocol_number() -> None:
    assert load_settings(["--ssl_version=5"]).ssl_version == 5  # KG's spelling
    assert Settings().ssl_version is None
    with pytest.raises(ValidationError, match="no server protocol"):
        Settings(ssl_version=17)  # PROTOCOL_TLS_CLIENT
