"""Kernel Gateway's environment policy for new kernels."""

from __future__ import annotations

from app.kernels.environment import kernel_environment

PROCESS = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/gw",
    "LANG": "C.UTF-8",
    "KG_AUTH_TOKEN": "secret-token",
    "SOMETHING": "else",
}


def test_without_env_inherits_gateway_environment_minus_token() -> None:
    env = kernel_environment(None, process_env=PROCESS, env_whitelist=[], process_whitelist=[])
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["HOME"] == "/home/gw"
    assert env["SOMETHING"] == "else"
    assert "KG_AUTH_TOKEN" not in env
    assert env["KERNEL_GATEWAY"] == "1"


def test_with_env_keeps_only_path_kernel_vars_and_whitelists() -> None:
    env = kernel_environment(
        {"KERNEL_FOO": "1", "OTHER": "x", "ALLOWED": "yes", "KERNEL_BAR": "b"},
        process_env=PROCESS,
        env_whitelist=["ALLOWED"],
        process_whitelist=["LANG"],
    )
    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "KERNEL_FOO": "1",
        "KERNEL_BAR": "b",
        "ALLOWED": "yes",
        "KERNEL_GATEWAY": "1",
    }


def test_empty_requested_env_still_restricts() -> None:
    env = kernel_environment({}, process_env=PROCESS, env_whitelist=[], process_whitelist=[])
    assert env == {"PATH": "/usr/bin:/bin", "KERNEL_GATEWAY": "1"}


def test_token_never_passes_even_when_whitelisted() -> None:
    env = kernel_environment(
        {"KG_AUTH_TOKEN": "requested"},
        process_env=PROCESS,
        env_whitelist=["KG_AUTH_TOKEN"],
        process_whitelist=["KG_AUTH_TOKEN"],
    )
    assert "KG_AUTH_TOKEN" not in env


def test_kernel_gateway_cannot_be_overridden() -> None:
    env = kernel_environment(
        {"KERNEL_GATEWAY": "0"}, process_env=PROCESS, env_whitelist=[], process_whitelist=[]
    )
    assert env["KERNEL_GATEWAY"] == "1"
    inherited = kernel_environment(
        None, process_env={**PROCESS, "KERNEL_GATEWAY": "0"}, env_whitelist=[], process_whitelist=[]
    )
    assert inherited["KERNEL_GATEWAY"] == "1"


def test_process_whitelist_only_takes_existing_names() -> None:
    env = kernel_environment(
        {}, process_env=PROCESS, env_whitelist=[], process_whitelist=["HOME", "NOT_SET_ANYWHERE"]
    )
    assert env["HOME"] == "/home/gw"
    assert "NOT_SET_ANYWHERE" not in env


def test_missing_path_is_empty_not_an_error() -> None:
    env = kernel_environment({"KERNEL_X": "1"}, process_env={}, env_whitelist=[], process_whitelist=[])
    assert env["PATH"] == ""
    assert env["KERNEL_X"] == "1"


def test_does_not_mutate_inputs() -> None:
    process = dict(PROCESS)
    requested = {"KERNEL_FOO": "1"}
    kernel_environment(requested, process_env=process, env_whitelist=[], process_whitelist=[])
    kernel_environment(None, process_env=process, env_whitelist=[], process_whitelist=[])
    assert process == PROCESS
    assert requested == {"KERNEL_FOO": "1"}
