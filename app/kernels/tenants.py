"""Enterprise Gateway's multi-tenant options: who may start kernels, and how many each, by KERNEL_USERNAME.

The messages are EG's own (enterprise_gateway's process proxies: `_raise_authorization_error` and
`_enforce_limits`), as 403s. A start without KERNEL_USERNAME counts as the gateway's own user, as in EG.
"""

from __future__ import annotations

import getpass
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.errors import Forbidden


@dataclass(frozen=True)
class TenantPolicy:
    max_kernels_per_user: int | None = None
    authorized_users: frozenset[str] = field(default_factory=frozenset)
    unauthorized_users: frozenset[str] = field(default_factory=frozenset)


def gateway_user() -> str:
    """The gateway's own user name; a uid without a passwd entry (as on Kubernetes) is its number."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def kernel_username(env: Mapping[str, str] | None) -> str:
    return (env or {}).get("KERNEL_USERNAME") or gateway_user()


class Tenants:
    """Admits kernel starts per user and counts each user's kernels (started or starting)."""

    def __init__(self, policy: TenantPolicy) -> None:
        self.policy = policy
        self._kernels: Counter[str] = Counter()

    def admit(self, user: str, kernel_display_name: str | None) -> None:
        """Check the user may start this kernel and count it; raises Forbidden with EG's message."""
        kernel = f" '{kernel_display_name}'." if kernel_display_name else "s."
        if user in self.policy.unauthorized_users:
            raise Forbidden(_refusal(user, "not authorized", kernel))
        if self.policy.authorized_users and user not in self.policy.authorized_users:
            raise Forbidden(_refusal(user, "not in the set of users authorized", kernel))
        limit = self.policy.max_kernels_per_user
        if limit is not None and self._kernels[user] >= limit:
            kernels = "kernel" if limit == 1 else "kernels"  # EG's wording, plural by the limit
            raise Forbidden(
                f"A max kernels per user limit has been set to {limit} and user '{user}' currently has "
                f"{self._kernels[user]} active {kernels}."
            )
        self._kernels[user] += 1

    def release(self, user: str) -> None:
        """One of the user's kernels is gone (or its start failed)."""
        self._kernels[user] -= 1
        if self._kernels[user] <= 0:
            del self._kernels[user]

    def count(self, user: str) -> int:
        return self._kernels[user]


def _refusal(user: str, clause: str, kernel: str) -> str:
    return (
        f"User '{user}' is {clause} to start kernel{kernel} "
        "Ensure KERNEL_USERNAME is set to an appropriate value and retry the request."
    )
