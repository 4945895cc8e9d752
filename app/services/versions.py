"""A service's version history: each deploy's notebook bytes, hash, time, origin and settings."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.errors import Conflict, NotFound
from app.services.spec import ServiceSpec


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Version:
    """One deployable version. `source` is where it was read from (path or URL), None for an upload."""

    id: int
    hash: str
    created: str
    deployed_by: str
    spec: ServiceSpec
    source: str | None
    raw: bytes

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "hash": self.hash, "created": self.created, "deployed_by": self.deployed_by}

    def record(self) -> dict[str, Any]:
        """What the state directory keeps (the bytes are stored apart, by hash)."""
        return {**self.summary(), "source": self.source, "spec": self.spec.to_json()}


class History:
    """The last `keep` versions, newest first; the active one is never dropped."""

    def __init__(self, keep: int, versions: list[Version] | None = None, next_id: int = 1) -> None:
        self.keep = max(1, keep)
        self.versions = sorted(versions or [], key=lambda v: v.id, reverse=True)
        self.next_id = max([next_id, *(v.id + 1 for v in self.versions)])

    @classmethod
    def from_record(cls, keep: int, record: Mapping[str, Any], notebooks: Mapping[str, bytes]) -> History:
        """A history saved in the state directory (Service.record), less versions whose notebook is gone."""
        versions = [
            Version(
                int(v["id"]),
                v["hash"],
                v["created"],
                v.get("deployed_by", "api"),
                ServiceSpec.from_json(v["spec"]),
                v.get("source"),
                notebooks[v["hash"]],
            )
            for v in record.get("versions", [])
            if v.get("hash") in notebooks
        ]
        return cls(keep, versions, int(record.get("next_id", 1)))

    def new(
        self, raw: bytes, spec: ServiceSpec, source: str | None, deployed_by: str, created: str | None = None
    ) -> Version:
        """A version not yet in the history (added once it serves)."""
        version = Version(
            self.next_id, content_hash(raw), created or now_iso(), deployed_by, spec, source, raw
        )
        self.next_id += 1
        return version

    def add(self, version: Version, active_id: int) -> None:
        self.versions = sorted([version, *self.versions], key=lambda v: v.id, reverse=True)
        while len(self.versions) > self.keep:
            drop = next((v for v in reversed(self.versions) if v.id != active_id), None)
            if drop is None:
                break
            self.versions.remove(drop)

    def get(self, version_id: int) -> Version:
        for version in self.versions:
            if version.id == version_id:
                return version
        raise NotFound(f"No such version: {version_id}")

    def find(self, raw: bytes, spec: ServiceSpec) -> Version | None:
        """The newest kept version of this notebook with these settings, if any."""
        digest = content_hash(raw)
        return next((v for v in self.versions if v.hash == digest and v.spec == spec), None)

    def previous(self, active_id: int | None) -> Version:
        """The newest version older than the active one (rollback's default)."""
        older = [v for v in self.versions if active_id is None or v.id < active_id]
        if not older:
            raise Conflict("There is no previous version to roll back to")
        return older[0]
