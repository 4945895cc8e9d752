"""One version of a service, running: its kernel pool (seeded, with the service's cwd and env) and the
ASGI app built from its endpoints. Counts requests in flight so that a replaced version drains."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.config import CellParser, Settings
from app.errors import KernelSpecNotFound, Unprocessable
from app.http.asgi import ASGIApp, Receive, Scope, Send
from app.kernels.pool import KernelPool
from app.kernels.seed import Seed
from app.kernels.service import KernelService
from app.notebook_api.loader import LoadedNotebook, read_notebook_bytes
from app.notebook_api.parsers import Endpoint, NotebookError, ParsedNotebook
from app.notebook_api.service import NotebookOptions, NotebookService, parse_notebook
from app.services.traffic import Traffic
from app.services.versions import Version

log = logging.getLogger(__name__)


class ServiceApp(Protocol):
    """The ASGI app of one version and its OpenAPI document."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def openapi(self) -> dict[str, Any]: ...


# Builds the app serving a notebook's endpoints under a full URL prefix with a body limit (transport's job).
AppBuilder = Callable[[NotebookService, str, int], ServiceApp]


@dataclass(frozen=True)
class DeployOptions:
    base_url: str = ""
    debug: bool = False
    allow_download: bool = False
    swagger: bool = False
    shrink_after: float = 60.0
    static_path: str | None = None  # served at <prefix>/public/ (KG_STATIC_PATH: the root notebook's)
    title: str | None = None  # names and tags the notebook's API (KG: its file name); None: the service's
    accept_cell: Callable[[str], bool] | None = None  # which startup cells seed a kernel (KG's plug-ins)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> DeployOptions:
        """What every version shares from the gateway's settings; `options` adds the caller's own."""
        return cls(
            base_url=settings.base_url,
            debug=settings.debug,
            allow_download=settings.allow_notebook_download,
            swagger=settings.parser is CellParser.SWAGGER,
            **options,
        )


class Deployment:
    """A started version. `app` serves it; `drain` waits for its requests, then frees its kernels."""

    def __init__(
        self,
        version: Version,
        notebook: NotebookService,
        app: ServiceApp,
        prefix: str,
        traffic: Traffic | None = None,
    ) -> None:
        self.version = version
        self.notebook = notebook
        self.app = app
        self.prefix = prefix
        self.traffic = traffic  # the service's, over all its versions (None: not counted)
        self._inflight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def pool(self) -> KernelPool:
        return self.notebook.pool

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.notebook.endpoints

    @property
    def kernel_name(self) -> str:
        return self.pool.kernel_name or ""

    @classmethod
    async def start(
        cls,
        version: Version,
        kernels: KernelService,
        build_app: AppBuilder,
        options: DeployOptions,
        traffic: Traffic | None = None,
    ) -> Deployment:
        """Parse, check, start and seed the pool. Anything wrong with the input is Unprocessable; a failing
        startup cell is SeedFailed, as the kernel reported it."""
        spec = version.spec
        loaded, parsed = _parse(version, options)
        requested = spec.kernel_name or loaded.kernel_name or None
        try:
            kernel_name, _spec = await kernels.resolve(requested)
        except KernelSpecNotFound:
            raise Unprocessable(f"Unknown kernelspec: {requested}") from None
        if spec.cwd is not None and not await asyncio.to_thread(Path(spec.cwd).is_dir):
            raise Unprocessable(f"cwd is not a directory: {spec.cwd}")
        accept = options.accept_cell or _every_cell
        seed = Seed(kernel_name, tuple(source for source in parsed.startup_sources if accept(source)))
        pool = KernelPool(
            kernels,
            spec.pool_min,
            kernel_name,
            max_size=spec.pool_max,
            start=lambda: kernels.start_private(kernel_name, seed=seed, env=spec.env, cwd=spec.cwd),
            shrink_after=options.shrink_after,
        )
        try:
            await pool.fill()
        except BaseException:
            await pool.close()
            raise
        notebook_options = NotebookOptions(
            pool_size=spec.pool_min,
            timeout=spec.timeout,
            debug=options.debug,
            allow_download=options.allow_download,
            static_path=options.static_path,
        )
        notebook = NotebookService(loaded, parsed, pool, notebook_options)
        prefix = options.base_url + spec.prefix
        log.info(
            "service %s v%d: %d endpoints at %s", spec.name, version.id, len(parsed.endpoints), prefix or "/"
        )
        return cls(version, notebook, build_app(notebook, prefix, spec.body_limit), prefix, traffic)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.run(self.app, scope, receive, send)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request on this version with `app` (its own app, or a handler its router matched):
        counted in flight, so that a replaced version drains, and in its service's traffic."""
        self._inflight += 1
        self._quiet.clear()
        try:
            if self.traffic is not None and scope["type"] == "http":
                await self.traffic.count(app, scope, receive, send)
            else:
                await app(scope, receive, send)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._quiet.set()

    def claims(self, raw_path: str) -> bool:
        """Whether a path under the prefix is one of this notebook's (its endpoints or its spec). A service
        at the root prefix serves only these; every other path goes on to the gateway's own routes."""
        relative = raw_path[len(self.prefix) :] or "/"
        if relative in ("/_api/spec/swagger.json", "/_api/source"):
            return True
        return self.notebook.parsed.match("GET", relative) is not None

    @property
    def inflight(self) -> int:
        return self._inflight

    async def drain(self, deadline: float) -> None:
        """Let the requests already routed here finish (at most `deadline` s), then free every kernel."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        try:
            async with asyncio.timeout(deadline):
                await self._quiet.wait()
        except TimeoutError:
            log.warning("service %s v%d: drain deadline passed", self.version.spec.name, self.version.id)
        await self.pool.drain(max(0.0, end - loop.time()))


def _every_cell(_source: str) -> bool:
    return True


def _parse(version: Version, options: DeployOptions) -> tuple[LoadedNotebook, ParsedNotebook]:
    """The version's notebook and its endpoints, named by `options.title` or else the service's name."""
    name = options.title or version.spec.name
    try:
        loaded = read_notebook_bytes(version.raw, f"{name}.ipynb", version.source or version.spec.name)
        loaded = dataclasses.replace(loaded, name=name)  # the OpenAPI tag and the Swagger title
        return loaded, parse_notebook(loaded, swagger=options.swagger)
    except NotebookError as exc:
        raise Unprocessable(str(exc)) from None
