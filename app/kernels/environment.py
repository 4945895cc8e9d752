"""Kernel Gateway's policy for the environment a new kernel process gets."""

from __future__ import annotations

from collections.abc import Mapping

SECRET_NAMES = frozenset({"KG_AUTH_TOKEN"})


def kernel_environment(
    requested: Mapping[str, str] | None,
    *,
    process_env: Mapping[str, str],
    env_whitelist: list[str],
    process_whitelist: list[str],
) -> dict[str, str]:
    """The env of a new kernel.

    Without a requested env the kernel inherits the gateway's environment (less the token). With one, it
    gets PATH, the KG_ENV_PROCESS_WHITELIST variables of the gateway, and the requested KERNEL_* and
    KG_ENV_WHITELIST variables, as Kernel Gateway does. KERNEL_GATEWAY=1 is always set.
    """
    if requested is None:
        env = {k: v for k, v in process_env.items() if k not in SECRET_NAMES}
    else:
        env = {"PATH": process_env.get("PATH", "")}
        env.update({k: v for k, v in process_env.items() if k in process_whitelist})
        env.update({k: str(v) for k, v in requested.items() if k.startswith("KERNEL_") or k in env_whitelist})
        for name in SECRET_NAMES:
            env.pop(name, None)
    env["KERNEL_GATEWAY"] = "1"
    return env
