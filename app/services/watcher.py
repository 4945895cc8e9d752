"""FASTKG_SERVICES_DIR: every notebook in the directory is a service named after its file, deployed at
startup, redeployed when the file changes and undeployed when it goes.

Polling (no inotify): a change is acted on only once the file's size and mtime have held still for one
poll interval, so a half-written file never takes traffic. Settings come from the notebook's
`metadata.fastkg` object (prefix, pool_min, pool_max, kernel_name, cwd, env, ...). A file that cannot be
deployed (not a notebook, bad settings, a prefix taken, a failing cell) is listed as a failed service
with the reason, or, when an earlier version serves, leaves it serving with the reason as its error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from app.errors import GatewayError, ServiceNotFound, Unprocessable
from app.notebook_api.loader import notebook_name
from app.services.registry import ServiceRegistry
from app.services.service import Service
from app.services.spec import NAME, ServiceSpec
from app.services.versions import content_hash

log = logging.getLogger(__name__)
Signature = tuple[int, int]


def _settings_of(raw: bytes, file_name: str) -> dict[str, Any]:
    """The notebook's service settings (its `metadata.fastkg`); Unprocessable when the bytes are not a
    notebook or the settings are not an object."""
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise Unprocessable(f"{file_name} is not a notebook (a JSON object with a list of cells)")
    metadata = document.get("metadata")
    fields = metadata.get("fastkg") if isinstance(metadata, dict) else None
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise Unprocessable("metadata.fastkg must be an object of service settings")
    return dict(fields)


class DirectoryWatcher:
    def __init__(self, directory: str, registry: ServiceRegistry, poll: float) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.registry = registry
        self.poll = poll
        self._applied: dict[str, Signature] = {}
        self._pending: dict[str, Signature] = {}
        self._ignored: set[str] = set()  # files whose names are no service names (warned about once)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Deploy what the directory holds now, then keep watching in an owned task."""
        await self.scan(initial=True)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.scan(initial=False)
            except Exception:
                log.exception("scanning %s failed", self.directory)

    def _listing(self) -> dict[str, tuple[Path, Signature]]:
        found: dict[str, tuple[Path, Signature]] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.ipynb")):
            name = notebook_name(path.name)
            if not NAME.fullmatch(name):
                if path.name not in self._ignored:
                    self._ignored.add(path.name)
                    log.warning("%s is not a service name ([a-z0-9][a-z0-9-]*); ignoring it", path.name)
                continue
            if not path.is_file():
                continue
            stat = path.stat()
            found[name] = (path, (stat.st_size, stat.st_mtime_ns))
        return found

    async def scan(self, *, initial: bool) -> None:
        listing = await asyncio.to_thread(self._listing)
        for name, (path, signature) in listing.items():
            if self._applied.get(name) == signature:
                continue
            if not initial and self._pending.get(name) != signature:
                self._pending[name] = signature  # changed since the last look: wait until it holds still
                continue
            self._pending.pop(name, None)
            await self._apply(name, path, signature)
        owned = [s.name for s in self.registry.all() if s.origin == "watcher"]
        for name in [n for n in {*self._applied, *owned} if n not in listing]:
            self._applied.pop(name, None)
            self._pending.pop(name, None)
            if name in owned:
                await self._undeploy(name)

    async def _apply(self, name: str, path: Path, signature: Signature) -> None:
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return
        if len(raw) != signature[0]:
            return  # it changed while being read: looked at again once it holds still
        self._applied[name] = signature
        existing = next((s for s in self.registry.all() if s.name == name), None)
        if existing is not None and existing.origin != "watcher":
            log.warning("%s: service %s is not this directory's; leaving it alone", path.name, name)
            return
        try:
            await self._deploy(name, path.name, raw, existing)
        except ServiceNotFound:
            return  # undeployed over the API meanwhile
        except GatewayError as exc:
            log.error("service %s from %s not deployed: %s", name, path.name, exc.message)
            await self.registry.fail(self._listed_spec(name, raw), exc.message, origin="watcher")

    async def _deploy(self, name: str, file_name: str, raw: bytes, existing: Service | None) -> None:
        try:
            spec = self.registry.spec_from(name, _settings_of(raw, file_name), cwd_base=self.directory)
        except Unprocessable as exc:
            raise Unprocessable(f"{file_name}: {exc.message}") from None
        if existing is None:
            await self.registry.deploy(spec, raw, None, by="watcher", origin="watcher", keep_failed=True)
        elif (
            existing.active is None
            or existing.active.version.hash != content_hash(raw)
            or existing.spec != spec
        ):
            await self.registry.update(name, spec, raw, None, by="watcher")

    def _listed_spec(self, name: str, raw: bytes) -> ServiceSpec:
        """What a notebook that could not be deployed is listed with: the prefix it asks for when that one
        is usable, the defaults otherwise."""
        try:
            prefix = _settings_of(raw, name).get("prefix")
            return self.registry.spec_from(name, {"prefix": prefix}, cwd_base=self.directory)
        except GatewayError:
            return self.registry.spec_from(name, {}, cwd_base=self.directory)

    async def _undeploy(self, name: str) -> None:
        try:
            await self.registry.undeploy(name)
        except GatewayError as exc:
            log.error("could not undeploy %s: %s", name, exc.message)
