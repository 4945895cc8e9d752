"""The service registry: owns every notebook service, deploys, swaps and drains their versions, and
routes a request path to a service by longest prefix (prefixes.py).

Changes to one service happen under its lock; the name/prefix table under the registry's. The route
table is rebuilt and swapped whole, so a request in flight on another service is never touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import Conflict, GatewayError, SeedFailed, ServiceNotFound, Unprocessable
from app.kernels.service import KernelService
from app.services.deployment import AppBuilder, Deployment, DeployOptions
from app.services.prefixes import PrefixTable, check_prefix
from app.services.root import RootNotebook
from app.services.service import Service, State
from app.services.sources import Sources
from app.services.spec import Defaults, ServiceSpec, build_spec, check_name
from app.services.versions import History, Version

log = logging.getLogger(__name__)
ChangeHook = Callable[[list[Service]], Awaitable[None]]


@dataclass(frozen=True)
class RegistryOptions:
    defaults: Defaults
    deploy: DeployOptions
    keep_versions: int = 10
    drain_seconds: float = 30.0


class ServiceRegistry:
    def __init__(self, options: RegistryOptions, build_app: AppBuilder, sources: Sources) -> None:
        self.options = options
        self.build_app = build_app
        self.sources = sources
        self.kernels: KernelService | None = None
        self.on_change: ChangeHook | None = None
        self.generation = 0  # bumped on every change of what is served (the combined OpenAPI follows it)
        self.root: RootNotebook | None = None  # KG_SEED_URI's notebook, served by the gateway's slot
        self._services: dict[str, Service] = {}
        self._routes = PrefixTable(options.deploy.base_url)
        self._lock = asyncio.Lock()
        self._draining: set[Deployment] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- queries ----------------------------------------------------------------------------------
    def all(self) -> list[Service]:
        return sorted(self._services.values(), key=lambda s: s.name)

    def get(self, name: str) -> Service:
        service = self._services.get(name)
        if service is None:
            raise ServiceNotFound(name)
        return service

    def match(self, path: str) -> Service | None:
        """The service whose full prefix is the longest one `path` lies under."""
        return self._routes.match(path)

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self.all()]

    def root_of(self, service: Service) -> RootNotebook | None:
        """The root notebook's configuration, when `service` is the root service."""
        root = self.root
        return root if root is not None and service.name == root.name else None

    # -- changes ----------------------------------------------------------------------------------
    def spec_from(self, name: str, fields: Mapping[str, Any], cwd_base: Path | None = None) -> ServiceSpec:
        base = cwd_base or self.sources.root
        if self.root is not None and name == self.root.name:
            return self.root.spec_from(fields, self.options.defaults, base)
        return build_spec(check_name(name), fields, self.options.defaults, cwd_base=base)

    async def deploy(
        self,
        spec: ServiceSpec,
        raw: bytes,
        source: str | None,
        *,
        by: str = "api",
        origin: str = "api",
        keep_failed: bool = False,
        history: History | None = None,
        version: Version | None = None,
    ) -> Service:
        """A new service, serving `version` of `history` (by default the version of this notebook and
        these settings, or a new one); answers once it serves. On failure it is forgotten (or kept as
        failed)."""
        history = history or History(self.options.keep_versions)
        async with self._lock:
            if spec.name in self._services:
                raise Conflict(f"Service {spec.name} already exists")
            check_prefix(spec.name, spec.prefix, self._services.values())
            service = Service(spec, history, origin)
            self._services[spec.name] = service
            self._rebuild_routes()
        async with service.lock:
            version = version or history.find(raw, spec) or history.new(raw, spec, source, by)
            try:
                deployment = await self._start(service, version)
            except BaseException as exc:
                if keep_failed and isinstance(exc, GatewayError):
                    service.state, service.error = State.FAILED, exc.message
                    await self._changed()
                else:
                    self._forget(service)
                raise
            self._activate(service, deployment)
        await self._changed()
        return service

    async def update(
        self, name: str, spec: ServiceSpec | None, raw: bytes | None, source: str | None, *, by: str = "api"
    ) -> Service:
        """A new version of a service (PUT, reload, watcher); the old one serves until it is ready."""
        service = self.get(name)
        async with service.lock:
            self._still_registered(service)
            if raw is None:  # new settings for the notebook already deployed
                current = service.active.version if service.active else _latest(service)
                if current is None:
                    raise Conflict(f"Service {name} has no notebook yet; send one")
                raw, source = current.raw, current.source
            await self._replace(service, service.history.new(raw, spec or service.spec, source, by))
        await self._changed()
        return service

    async def reload(self, name: str, *, by: str = "api") -> Service:
        """Re-read the active version's source (the root's: KG_SEED_URI) and deploy what it holds now; a
        source that cannot be read is recorded as the service's error, like a failing deploy."""
        service = self.get(name)
        root = self.root_of(service)
        current = service.active.version if service.active else _latest(service)
        source = root.source if root else current.source if current else None
        if source is None:
            raise Conflict(f"Service {name} has no source to reload from (it was uploaded or is watched)")
        try:
            raw = await (root.read() if root else self.sources.read(source))
        except GatewayError as exc:
            service.error = exc.message
            await self._changed()
            raise
        return await self.update(name, None, raw, source, by=by)

    async def rollback(self, name: str, version_id: int | None) -> Service:
        """Serve an earlier version again (default: the one before the active one)."""
        service = self.get(name)
        async with service.lock:
            self._still_registered(service)
            active_id = service.active.version.id if service.active else None
            if version_id is None:
                version = service.history.previous(active_id)
            else:
                version = service.history.get(version_id)
            if version.id != active_id:
                await self._replace(service, version)
        await self._changed()
        return service

    async def fail(
        self, spec: ServiceSpec, error: str, *, origin: str, history: History | None = None
    ) -> Service:
        """Record why `spec.name` could not be deployed. A service of that name keeps what it serves and
        shows `error`; an unknown name is listed as failed with `error`, holding neither a prefix nor a
        version, until a deploy of it succeeds (`update`) or it is undeployed."""
        async with self._lock:
            service = self._services.get(spec.name)
            if service is None:
                service = Service(spec, history or History(self.options.keep_versions), origin)
                service.state, service.holds_prefix = State.FAILED, False
                self._services[spec.name] = service
            elif not service.holds_prefix:
                service.spec = spec  # what it asks for now
            service.error = error
        await self._changed()
        return service

    async def undeploy(self, name: str) -> None:
        """Stop routing to the service, let its requests finish, free its kernels, forget it."""
        service = self.get(name)
        if (root := self.root_of(service)) is not None:
            raise root.undeploy_refused()
        async with service.lock:
            self._still_registered(service)
            service.state = State.DRAINING
            self._forget(service)
            if service.active is not None:
                await service.active.drain(self.options.drain_seconds)
        await self._changed()
        log.info("service %s undeployed", name)

    async def close(self) -> None:
        """Gateway shutdown: free every service's kernels now (draining versions too)."""
        deployments = [s.active for s in self._services.values() if s.active] + list(self._draining)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._services.clear()
        self._routes.replace([])
        await asyncio.gather(*(d.pool.close() for d in deployments), return_exceptions=True)

    # -- internals --------------------------------------------------------------------------------
    def _still_registered(self, service: Service) -> None:
        """A change that waited for the lock while the service was undeployed must not revive it."""
        if self._services.get(service.name) is not service:
            raise ServiceNotFound(service.name)

    async def _replace(self, service: Service, version: Version) -> None:
        """Start `version` beside the serving one and swap; on failure keep the old one and say why."""
        if version.spec.prefix != service.prefix or not service.holds_prefix:
            async with self._lock:
                check_prefix(service.name, version.spec.prefix, self._services.values())
                service.pending_prefix = version.spec.prefix
        service.state = State.DEPLOYING
        try:
            deployment = await self._start(service, version)
        except BaseException as exc:
            service.state = State.SERVING if service.active else State.FAILED
            if isinstance(exc, GatewayError):
                service.error = exc.message
                await self._changed()
            raise
        finally:
            service.pending_prefix = None
        self._activate(service, deployment)

    async def _start(self, service: Service, version: Version) -> Deployment:
        if self.kernels is None:
            raise GatewayError("The gateway is starting")
        root = self.root_of(service)
        build_app, options = (root.build_app, root.options) if root else (self.build_app, self.options.deploy)
        try:
            return await Deployment.start(version, self.kernels, build_app, options, service.traffic)
        except SeedFailed as exc:
            raise Unprocessable(f"A startup cell failed: {exc.message}") from None

    def _activate(self, service: Service, deployment: Deployment) -> None:
        old = service.active
        service.active = deployment
        service.spec = deployment.version.spec
        if all(v.id != deployment.version.id for v in service.history.versions):
            service.history.add(deployment.version, deployment.version.id)
        service.state, service.error, service.holds_prefix = State.SERVING, None, True
        self._rebuild_routes()
        if old is not None:
            self._draining.add(old)
            task = asyncio.get_running_loop().create_task(self._drain(old))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, deployment: Deployment) -> None:
        try:
            await deployment.drain(self.options.drain_seconds)
        finally:
            self._draining.discard(deployment)

    def _forget(self, service: Service) -> None:
        if self._services.get(service.name) is service:
            del self._services[service.name]
        self._rebuild_routes()

    def _rebuild_routes(self) -> None:
        # the root service is not dispatched here: the gateway's notebook slot serves it (its first route)
        routed = (
            s
            for s in self._services.values()
            if s.holds_prefix and s.state is not State.DRAINING and self.root_of(s) is None
        )
        self._routes.replace(routed)
        self.generation += 1

    async def _changed(self) -> None:
        self.generation += 1
        if self.on_change is not None:
            try:
                await self.on_change(self.all())
            except OSError as exc:
                log.error("could not save the services state: %s", exc)


def _latest(service: Service) -> Version | None:
    return service.history.versions[0] if service.history.versions else None
