"""KG's single-notebook mode as a service: the KG_SEED_URI notebook at the gateway's root prefix, named
after its file, with a fixed pool of KG_PRESPAWN_COUNT kernels, read again from KG_SEED_URI on a reload.

Its versions are started like any service's; only where they are served differs: the gateway's notebook
slot (its first route) serves the active one, so its paths win over the gateway's own, as in KG.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Conflict, Unprocessable
from app.kernels.service import KernelService
from app.notebook_api.loader import LoadedNotebook, load_notebook
from app.notebook_api.parsers import NotebookError
from app.services.deployment import AppBuilder, Deployment, DeployOptions
from app.services.spec import Defaults, ServiceSpec, build_spec
from app.services.versions import History

ROOT_PREFIX = ""  # the root: the notebook's paths are its own (`/hello`, `/_api/spec/swagger.json`)
ORIGIN = "config"  # the root service belongs to the configuration (not to the API or the watcher)
_OTHER = re.compile(r"[^a-z0-9]+")


def root_name(title: str) -> str:
    """The service name of a notebook called `title` (KG's name: its file name up to the first dot):
    lower case, each run of characters other than a-z and 0-9 made one '-', at most 63 characters,
    no '-' at either end; 'root' when nothing is left (`KG_Compat.ipynb` -> `kg-compat`)."""
    name = _OTHER.sub("-", title.lower())[:63].strip("-")
    return name or "root"


@dataclass(frozen=True)
class RootNotebook:
    source: str  # KG_SEED_URI: what a reload reads
    raw: bytes  # the notebook as read at startup
    spec: ServiceSpec  # its name, the root prefix, its pool
    options: DeployOptions  # KG's: the notebook's own name as its title, KG_STATIC_PATH, plug-ins' seeds
    build_app: AppBuilder  # its versions' apps, for the gateway's notebook slot

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def configure(
        cls,
        settings: Settings,
        notebook: LoadedNotebook,
        build_app: AppBuilder,
        accept_cell: Callable[[str], bool] | None = None,
    ) -> RootNotebook:
        """The root notebook as KG serves it: a pool of max(KG_PRESPAWN_COUNT, 1) kernels, neither
        growing nor shrinking, FASTKG_REQUEST_TIMEOUT and FASTKG_MAX_REQUEST_BODY."""
        size = max(settings.prespawn_count or 0, 1)
        spec = ServiceSpec(
            name=root_name(notebook.name),
            prefix=ROOT_PREFIX,
            pool_min=size,
            pool_max=size,
            timeout=settings.request_timeout,
            body_limit=settings.max_request_body,
        )
        options = DeployOptions.from_settings(
            settings,
            static_path=settings.static_path,
            title=notebook.name,
            accept_cell=accept_cell,
        )
        return cls(settings.seed_uri or "", notebook.raw, spec, options, build_app)

    async def start(self, kernels: KernelService) -> Deployment:
        """Its one version, without the services personality (nothing to reload it with)."""
        version = History(1).new(self.raw, self.spec, self.source, ORIGIN)
        return await Deployment.start(version, kernels, self.build_app, self.options)

    async def read(self) -> bytes:
        """KG_SEED_URI's notebook now (configured by the operator, so not bound to FASTKG_SERVICES_ROOT)."""
        try:
            return (await load_notebook(self.source)).raw
        except NotebookError as exc:
            raise Unprocessable(str(exc)) from None

    def spec_from(
        self, fields: Mapping[str, Any], defaults: Defaults, cwd_base: Path | None = None
    ) -> ServiceSpec:
        """New settings (PUT): anything a service takes, but the prefix stays the root."""
        if fields.get("prefix") not in (None, "", "/"):
            raise Conflict(f"Service {self.name} is KG_SEED_URI's notebook at the root; its prefix is fixed")
        spec = build_spec(self.name, {**fields, "prefix": None}, defaults, cwd_base=cwd_base)
        return replace(spec, prefix=ROOT_PREFIX)

    def undeploy_refused(self) -> Conflict:
        return Conflict(
            f"Service {self.name} is the root notebook KG_SEED_URI configures; it cannot be undeployed "
            "(serve another notebook with PUT, or change KG_SEED_URI and restart)"
        )
