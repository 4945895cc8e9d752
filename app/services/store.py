"""FASTKG_STATE_DIR: the services, their versions and the notebooks (stored once per content hash),
written atomically after every change and read back at startup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from app.services.service import Service

log = logging.getLogger(__name__)
INDEX = "services.json"


class StateStore:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory).expanduser()
        self.notebooks = self.directory / "notebooks"
        self._lock = asyncio.Lock()

    async def save(self, services: list[Service]) -> None:
        """Write the services that have a version (one without has nothing to come back with)."""
        kept = [s for s in services if s.history.versions]
        records = [s.record() for s in kept]
        blobs = {v.hash: v.raw for s in kept for v in s.history.versions}
        async with self._lock:
            await asyncio.to_thread(self._write, records, blobs)

    def _write(self, records: list[dict[str, Any]], blobs: dict[str, bytes]) -> None:
        self.notebooks.mkdir(parents=True, exist_ok=True)
        for digest, raw in blobs.items():
            path = self.notebooks / f"{digest}.ipynb"
            if not path.exists():
                _atomic_write(path, raw)
        _atomic_write(self.directory / INDEX, json.dumps({"services": records}, indent=1).encode())
        kept = {f"{digest}.ipynb" for digest in blobs}
        for path in self.notebooks.glob("*.ipynb"):
            if path.name not in kept:
                path.unlink(missing_ok=True)

    async def load(self) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """The saved service records and the notebook bytes they refer to (empty if nothing saved)."""
        return await asyncio.to_thread(self._read)

    def _read(self) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        index = self.directory / INDEX
        if not index.exists():
            return [], {}
        try:
            records = json.loads(index.read_bytes())["services"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable services state %s: %s", index, exc)
            return [], {}
        blobs: dict[str, bytes] = {}
        for record in records:
            for version in record.get("versions", []):
                path = self.notebooks / f"{version.get('hash')}.ipynb"
                if path.is_file():
                    blobs[version["hash"]] = path.read_bytes()
        return records, blobs


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
