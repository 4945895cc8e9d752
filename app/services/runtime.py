"""Everything the services personality runs, with one lifetime: the registry, the async job table, the
state directory and the watched directory. Built by create_app, started and closed by the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from app.config import Settings
from app.errors import Conflict, GatewayError
from app.kernels.service import KernelService
from app.notebook_api.service import NotebookService
from app.services.deployment import AppBuilder, DeployOptions
from app.services.jobs import JobTable
from app.services.registry import RegistryOptions, ServiceRegistry
from app.services.root import ORIGIN, RootNotebook
from app.services.service import Service
from app.services.sources import Sources
from app.services.spec import Defaults, ServiceSpec
from app.services.store import StateStore
from app.services.versions import History, Version
from app.services.watcher import DirectoryWatcher

log = logging.getLogger(__name__)


def registry_options(settings: Settings) -> RegistryOptions:
    return RegistryOptions(
        defaults=Defaults(
            pool_min=settings.services_pool_min,
            pool_max=max(settings.services_pool_min, settings.services_pool_max),
            pool_limit=max(
                settings.services_pool_limit, settings.services_pool_min, settings.services_pool_max
            ),
            timeout=settings.request_timeout,
            body_limit=settings.max_request_body,
        ),
        deploy=DeployOptions.from_settings(settings, shrink_after=settings.services_shrink_after),
        keep_versions=settings.services_versions,
        drain_seconds=settings.services_drain,
    )


class ServicesRuntime:
    def __init__(self, settings: Settings, build_app: AppBuilder) -> None:
        self.registry = ServiceRegistry(
            registry_options(settings),
            build_app,
            Sources(settings.services_root, settings.services_max_upload),
        )
        self.jobs = JobTable(settings.jobs_max, settings.jobs_ttl)
        self.store = StateStore(settings.state_dir) if settings.state_dir else None
        self.watcher = (
            DirectoryWatcher(settings.services_dir, self.registry, settings.services_poll)
            if settings.services_dir
            else None
        )

    async def start(self, kernels: KernelService, root: RootNotebook | None = None) -> Service | None:
        """Deploy the root notebook (KG_SEED_URI's, with its saved versions), restore the other saved
        services, deploy the watched directory, then save on every change. The root service or None."""
        self.registry.kernels = kernels
        records, notebooks = await self.store.load() if self.store is not None else ([], {})
        root_service = None
        if root is not None:
            saved = next(
                (r for r in records if r.get("origin") == ORIGIN and r.get("name") == root.name), None
            )
            root_service = await self._deploy_root(root, saved, notebooks)
        for record in records:
            await self._restore(record, notebooks)
        if self.store is not None:
            self.registry.on_change = self.store.save
            if root_service is not None:
                await self.store.save(self.registry.all())  # the root's version of this start
        if self.watcher is not None:
            await self.watcher.start()
        return root_service

    async def _deploy_root(
        self, root: RootNotebook, record: Mapping[str, Any] | None, notebooks: Mapping[str, bytes]
    ) -> Service:
        """KG_SEED_URI's notebook as the root service, with the versions saved in `record` (its notebook
        now is the kept version it equals, or a new one); a failure stops the startup, as in KG."""
        keep = self.registry.options.keep_versions
        history = History.from_record(keep, record, notebooks) if record else History(keep)
        self.registry.root = root
        try:
            return await self.registry.deploy(
                root.spec, root.raw, root.source, by=ORIGIN, origin=ORIGIN, history=history
            )
        except BaseException:
            self.registry.root = None
            raise

    async def _restore(self, record: Mapping[str, Any], notebooks: Mapping[str, bytes]) -> None:
        """Bring back a saved service: serving its active version (same id), or failed with the reason
        and its versions kept to roll back to."""
        name, origin = record.get("name"), str(record.get("origin", "api"))
        if origin == ORIGIN:
            return  # a root notebook: deployed from KG_SEED_URI above, or no longer configured
        if origin == "watcher" and not await self._still_watched(name):
            return  # its notebook left the watched directory while the gateway was down
        try:
            if any(s.name == name for s in self.registry.all()):
                raise Conflict(f"Service {name} already exists")
            history = History.from_record(self.registry.options.keep_versions, record, notebooks)
            active = next((v for v in history.versions if v.id == record.get("active")), None)
            if active is None:
                spec = ServiceSpec.from_json(record["spec"])
                service = await self.registry.fail(
                    spec, "No version to restore", origin=origin, history=history
                )
            else:
                service = await self._deploy_saved(active, history, origin)
        except (GatewayError, KeyError, TypeError, ValueError) as exc:
            log.error("could not restore service %s: %s", name, exc)
            return
        log.info("restored service %s (%s)", service.name, service.state.value)

    async def _deploy_saved(self, active: Version, history: History, origin: str) -> Service:
        spec = active.spec
        try:
            return await self.registry.deploy(
                spec,
                active.raw,
                active.source,
                origin=origin,
                keep_failed=True,
                history=history,
                version=active,
            )
        except GatewayError:
            registered = next((s for s in self.registry.all() if s.name == spec.name), None)
            if registered is None or registered.history is not history:
                raise  # its name or prefix is taken
            return registered  # failed to start: kept as failed, with its versions

    async def _still_watched(self, name: object) -> bool:
        if self.watcher is None or not isinstance(name, str):
            return False
        return await asyncio.to_thread((self.watcher.directory / f"{name}.ipynb").is_file)

    def serving_notebooks(self) -> list[NotebookService]:
        """The notebook of each service's active version (the root service's too), for /metrics."""
        return [service.active.notebook for service in self.registry.all() if service.active is not None]

    async def close(self) -> None:
        if self.watcher is not None:
            await self.watcher.close()
        await self.jobs.close()
        self.registry.on_change = None
        await self.registry.close()
