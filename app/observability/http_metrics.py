"""HTTP measurements: requests by route template, method and status, and notebook endpoint latencies."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.http.asgi import ASGIApp, Message, Receive, Scope, Send
from app.routers.notebook import NotebookRoute

UNMATCHED = "<unmatched>"  # no route answered (404, or refused before routing: 401, 413 ...)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/kernels/{kernel_id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if scope.get("endpoint") is not None and isinstance(scope.get("root_path"), str):
        return f"{scope['root_path']}/{{path}}"  # a Mount (static files)
    return UNMATCHED


class HttpMetrics:
    """The instruments, registered on one app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "fastkg_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "fastkg_http_request_duration_seconds",
            "HTTP request latency until the response ends",
            ["route", "method"],
            registry=registry,
        )
        labels = ["service", "version", "endpoint", "method"]
        self.notebook_requests = Counter(
            "fastkg_notebook_requests",
            "Notebook API requests by service, version, endpoint and status",
            [*labels, "status"],
            registry=registry,
        )
        self.notebook_duration = Histogram(
            "fastkg_notebook_request_duration_seconds",
            "Notebook API request latency",
            labels,
            registry=registry,
        )

        # The labelled children per (template, notebook tag, method, status): resolving labels is most of
        # a record's cost, and these keys are exactly as bounded as the label values.
        self._children: dict[tuple[str, str | None, str, int], tuple[Any, ...]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        tag = str(route.tags[0]) if isinstance(route, NotebookRoute) and route.tags else None
        key = (route_template(scope), tag, scope.get("method", ""), status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._resolve(*key)
        for counter, histogram in zip(children[::2], children[1::2], strict=True):
            counter.inc()
            histogram.observe(seconds)

    def _resolve(self, template: str, tag: str | None, method: str, status: int) -> tuple[Any, ...]:
        children = [
            self.requests.labels(template, method, str(status)),
            self.duration.labels(template, method),
        ]
        if tag is not None:
            endpoint = [tag, "", template, method]
            children += [
                self.notebook_requests.labels(*endpoint, str(status)),
                self.notebook_duration.labels(*endpoint),
            ]
        return tuple(children)


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            self.metrics.record(scope, status, time.perf_counter() - began)
