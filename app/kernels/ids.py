"""Kernel and session ids: random UUIDs, beginning with this replica's FASTKG_KERNEL_ID_PREFIX if set.

A proxy in front of several replicas reads the prefix off /api/kernels/{id}/... to reach the replica that
owns the kernel (README: "Several replicas"). The prefix replaces leading hex digits of a version-4 UUID
(at most 8, so the version and variant digits stay): the id is still a valid UUID, with fewer random bits.
"""

from __future__ import annotations

import uuid


def new_id(prefix: str = "") -> str:
    value = str(uuid.uuid4())
    return prefix + value[len(prefix) :]
