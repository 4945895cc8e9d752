"""The one ASGI entry for notebook services, installed once by create_app: a request under a service's
prefix goes to that service's active version (or becomes an asynchronous job); anything else goes on
to the gateway's own routes. Nothing is added to the app's routes when services change."""

from __future__ import annotations

import json

from app.errors import GatewayError
from app.http.asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error
from app.services.jobs import JobTable
from app.services.registry import ServiceRegistry
from app.services.service import Service


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if isinstance(raw, bytes) else str(scope["path"])


def wants_async(scope: Scope) -> bool:
    prefer = header(scope, b"prefer") or ""
    return any(part.strip().lower() == "respond-async" for part in prefer.split(","))


class ServiceDispatchMiddleware:
    def __init__(self, app: ASGIApp, registry: ServiceRegistry, jobs: JobTable, jobs_url: str) -> None:
        self.app = app
        self.registry = registry
        self.jobs = jobs
        self.jobs_url = jobs_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        service = self.registry.match(scope["path"])
        if service is None:
            await self.app(scope, receive, send)
            return
        deployment = service.active
        if service.prefix == "" and (deployment is None or not deployment.claims(_raw_path(scope))):
            await self.app(scope, receive, send)  # the root service owns only its notebook's paths
            return
        if deployment is None:
            message = f"Service {service.name} is not serving ({service.state.value})"
            await send_error(scope, send, 503, message)
            return
        if scope["type"] == "http" and wants_async(scope):
            await self._submit(service, deployment, scope, receive, send)
            return
        await deployment(scope, receive, send)  # counted in the service's traffic by the version

    async def _submit(
        self, service: Service, deployment: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        job_scope = dict(scope)
        try:
            job = self.jobs.submit(service.name, lambda capture: deployment(job_scope, replay, capture))
        except GatewayError as exc:
            await send_error(scope, send, exc.status, exc.message)
            return
        location = f"{self.jobs_url}/{job.id}"
        payload = json.dumps(job.summary()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"location", location.encode()),
                    (b"retry-after", b"1"),
                    (b"preference-applied", b"respond-async"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
