"""Everything the services personality runs, with one lifetime: the registry, the async job table, the
state directory and the watched directory. Built by create_app, started and closed by the lifespan."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.config import CellParser, Settings
from app.errors import GatewayError
from app.kernels.service import KernelService
from app.services.deployment import AppBuilder, DeployOptions
from app.services.jobs import JobTable
from app.services.registry import RegistryOptions, ServiceRegistry
from app.services.root import ORIGIN, RootNotebook
from app.services.service import Service
from app.services.sources import Sources
from app.services.spec import Defaults
from app.services.store import StateStore
from app.services.watcher import DirectoryWatcher

log = logging.getLogger(__name__)


def registry_options(settings: Settings) -> RegistryOptions:
    return RegistryOptions(
        defaults=Defaults(
            pool_min=settings.services_pool_min,
            pool_max=max(settings.services_pool_min, settings.services_pool_max),
            timeout=settings.request_timeout,
            body_limit=settings.max_request_body,
        ),
        deploy=DeployOptions(
            base_url=settings.base_url,
            debug=settings.debug,
            allow_download=settings.allow_notebook_download,
            swagger=settings.parser is CellParser.SWAGGER,
            shrink_after=settings.services_shrink_after,
        ),
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
            root_service = await self.registry.deploy_root(root, saved, notebooks)
        for record in records:
            await self._restore(record, notebooks)
        if self.store is not None:
            self.registry.on_change = self.store.save
            if root_service is not None:
                await self.store.save(self.registry.all())  # the root's version of this start
        if self.watcher is not None:
            await self.watcher.start()
        return root_service

    async def _restore(self, record: dict[str, Any], notebooks: dict[str, bytes]) -> None:
        name = record.get("name")
        if record.get("origin") == ORIGIN:
            return  # a root notebook: deployed from KG_SEED_URI above, or no longer configured
        if record.get("origin") == "watcher" and not await self._still_watched(name):
            return  # its notebook left the watched directory while the gateway was down
        try:
            service = await self.registry.restore(record, notebooks)
        except (GatewayError, KeyError, TypeError, ValueError) as exc:
            log.error("could not restore service %s: %s", name, exc)
            return
        if service is None:
            log.error("could not restore service %s: the name is taken", name)
        else:
            log.info("restored service %s (%s)", service.name, service.state.value)

    async def _still_watched(self, name: object) -> bool:
        if self.watcher is None or not isinstance(name, str):
            return False
        return await asyncio.to_thread((self.watcher.directory / f"{name}.ipynb").is_file)

    async def close(self) -> None:
        if self.watcher is not None:
            await self.watcher.close()
        await self.jobs.close()
        self.registry.on_change = None
        await self.registry.close()
