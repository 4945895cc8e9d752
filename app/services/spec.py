"""What a service is configured with (name, prefix, pool, cwd, env, limits) and the rules they obey."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.errors import Unprocessable

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# The gateway's own paths: no service may sit on, under or above them (some need no token, so a service
# there would be reachable without one).
RESERVED = ("/api", "/docs", "/openapi.json", "/kernelspecs", "/livez", "/readyz", "/metrics", "/admin")
FIELDS = ("prefix", "kernel_name", "pool_min", "pool_max", "cwd", "env", "timeout", "body_limit")


@dataclass(frozen=True)
class Defaults:
    """Gateway-wide values a service setting falls back to."""

    pool_min: int = 1
    pool_max: int = 4
    pool_limit: int = 32  # no service's pool may grow beyond it (each kernel is a process)
    timeout: float = 60.0
    body_limit: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class ServiceSpec:
    """One version's settings; `kernel_name` "" means the notebook's kernelspec (or the default)."""

    name: str
    prefix: str
    kernel_name: str = ""
    pool_min: int = 1
    pool_max: int = 4
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    body_limit: int = 10 * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Unprocessable(
            f"Invalid service name {name!r}: use lowercase letters, digits and '-', starting with a letter "
            "or digit (at most 63 characters)"
        )
    return name


def default_prefix(name: str) -> str:
    return f"/services/{name}"


def normalise_prefix(prefix: object) -> str:
    """`/a/b` form: a leading slash, no trailing slash, plain segments (no `.` or `..`)."""
    if not isinstance(prefix, str):
        raise Unprocessable("prefix must be a string")
    cleaned = "/" + prefix.strip().strip("/")
    segments = cleaned.split("/")[1:]
    if cleaned == "/" or any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        raise Unprocessable(f"Invalid prefix {prefix!r}: use /segment[/segment...] of letters, digits, ._~-")
    return cleaned


def overlaps(a: str, b: str) -> bool:
    """Two prefixes overlap when one is the other or lies under it ("" is the root service's prefix)."""
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return shorter != "" and longer.startswith(shorter + "/")


def reserved_clash(prefix: str) -> str | None:
    """The gateway path a prefix would shadow or sit under, if any."""
    return next((r for r in RESERVED if overlaps(prefix, r)), None)


def _int(fields: Mapping[str, Any], key: str, default: int, low: int) -> int:
    value = fields.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Unprocessable(f"{key} must be an integer") from None
    if isinstance(value, float | bool) or number < low:
        raise Unprocessable(f"{key} must be an integer of at least {low}")
    return number


def _float(fields: Mapping[str, Any], key: str, default: float) -> float:
    value = fields.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Unprocessable(f"{key} must be a number") from None
    if isinstance(value, bool) or not 0 < number < math.inf:  # inf (JSON 1e400) would wait forever
        raise Unprocessable(f"{key} must be a positive number")
    return number


def _env(value: object) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Unprocessable("env must be a JSON object of strings") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise Unprocessable("env must be a JSON object of strings")
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value.values()):
        raise Unprocessable("env values must be strings")
    env = {k: str(v) for k, v in value.items()}
    if any("=" in k or "\x00" in k + v for k, v in env.items()):  # no process environment holds them
        raise Unprocessable("env names may not contain '=' or NUL, nor values NUL")
    return env


def _cwd(value: object, base: Path | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unprocessable("cwd must be a string")
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # `~name` of no user: there is no home directory to expand
        raise Unprocessable(f"cwd {value!r}: no such user's home directory") from None
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def build_spec(
    name: str, fields: Mapping[str, Any], defaults: Defaults, *, cwd_base: Path | None = None
) -> ServiceSpec:
    """Validate REST/metadata fields into a spec; every problem is a 422 naming the field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise Unprocessable(f"Unknown service setting(s): {', '.join(unknown)}")
    prefix = fields.get("prefix")
    pool_min = _int(fields, "pool_min", defaults.pool_min, 1)
    pool_max = _int(fields, "pool_max", max(defaults.pool_max, pool_min), 1)
    if pool_max < pool_min:
        raise Unprocessable(f"pool_max ({pool_max}) is below pool_min ({pool_min})")
    if pool_max > defaults.pool_limit:
        limit = defaults.pool_limit
        raise Unprocessable(
            f"pool_max ({pool_max}) is above the gateway's limit ({limit}, FASTKG_SERVICES_POOL_LIMIT)"
        )
    kernel_name = fields.get("kernel_name") or ""
    if not isinstance(kernel_name, str):
        raise Unprocessable("kernel_name must be a string")
    return ServiceSpec(
        name=name,
        prefix=default_prefix(name) if prefix in (None, "") else normalise_prefix(prefix),
        kernel_name=kernel_name,
        pool_min=pool_min,
        pool_max=pool_max,
        cwd=_cwd(fields.get("cwd"), cwd_base),
        env=_env(fields.get("env")),
        timeout=_float(fields, "timeout", defaults.timeout),
        body_limit=_int(fields, "body_limit", defaults.body_limit, 1),
    )
