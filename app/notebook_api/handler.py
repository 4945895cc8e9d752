"""Run one notebook endpoint on a pooled kernel and turn what it produced into an HTTP response.

Kernel Gateway's rules: the body is the cell's stdout, else the JSON of its execute_result, else empty;
`text/plain` by default; a ResponseInfo cell prints `{"status", "headers"}` applied to the response; a
cell error is a 500. fastkg adds: a displayed MIME bundle (image, HTML, JSON ...) becomes the body when
there is no stdout, error detail as JSON for clients that accept it, timeouts and kernel recovery.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from app.errors import ExecutionTimeout, GatewayError, KernelUnavailable
from app.kernels.executor import ExecutionResult
from app.kernels.pool import KernelPool, Lease
from app.notebook_api.parsers import Endpoint
from app.notebook_api.request import code_with_request

log = logging.getLogger(__name__)

TEXT_PLAIN = "text/plain"  # exactly what KG sets (Tornado adds no charset to a set header)
# Displayed MIME types a response may carry, richest first; text/plain is the fallback.
RICH_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/svg+xml",
    "application/pdf",
    "text/html",
    "application/json",
    "text/markdown",
    "text/latex",
    "text/csv",
)
BINARY_PREFIXES = ("image/png", "image/jpeg", "image/gif", "application/pdf")
RECOVERY_SECONDS = 5.0


@dataclass
class NotebookResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HandlerOptions:
    language: str
    timeout: float
    debug: bool = False


def _bundle_body(bundle: dict[str, Any]) -> tuple[bytes, str] | None:
    for mime in RICH_TYPES:
        if mime in bundle:
            value = bundle[mime]
            if mime.startswith(BINARY_PREFIXES) and isinstance(value, str):
                return base64.b64decode(value), mime
            if isinstance(value, (dict, list)) or mime == "application/json":
                return json.dumps(value).encode(), mime
            text = "".join(value) if isinstance(value, list) else str(value)
            return text.encode(), f"{mime}; charset=utf-8"
    return None


def body_of(result: ExecutionResult) -> tuple[bytes, str]:
    """The response body and its content type, by KG's rules plus displayed MIME bundles."""
    if result.stdout:
        return result.text.encode(), TEXT_PLAIN
    for bundle in result.displays:
        rich = _bundle_body(bundle)
        if rich is not None:
            return rich
    if result.result is not None:
        return json.dumps(result.result).encode(), TEXT_PLAIN
    return b"", TEXT_PLAIN


def error_response(result: ExecutionResult, accept: str, debug: bool) -> NotebookResponse:
    """A cell error: KG's `Error <ename>: <evalue>` text, or JSON detail for clients that accept it."""
    message = f"Error {result.ename}: {result.evalue}"
    if "application/json" in accept:
        detail: dict[str, Any] = {
            "reason": "Internal Server Error",
            "message": message,
            "ename": result.ename,
            "evalue": result.evalue,
        }
        if debug:
            detail["traceback"] = result.traceback
        return NotebookResponse(500, json.dumps(detail).encode(), {"Content-Type": "application/json"})
    text = message + ("\n" + "\n".join(result.traceback) if debug and result.traceback else "")
    return NotebookResponse(500, text.encode(), {"Content-Type": TEXT_PLAIN})


def apply_response_info(response: NotebookResponse, info: ExecutionResult) -> None:
    """Apply a ResponseInfo cell's printed `{"status": int, "headers": {...}}`."""
    if not info.ok:
        raise GatewayError(f"ResponseInfo cell failed: {info.ename}: {info.evalue}")
    text = info.text.strip()
    if not text:
        return
    try:
        meta = json.loads(text)
    except ValueError:
        raise GatewayError("ResponseInfo cell did not print JSON") from None
    if not isinstance(meta, dict):
        raise GatewayError("ResponseInfo cell must print a JSON object")
    status = meta.get("status")
    if isinstance(status, int) and 100 <= status <= 599:
        response.status = status
    headers = meta.get("headers")
    if isinstance(headers, dict):
        response.headers.update({str(k): str(v) for k, v in headers.items()})


async def _run(lease: Lease, code: str, options: HandlerOptions) -> ExecutionResult:
    """Execute on the leased kernel; on timeout interrupt it and, if it stays busy, have it replaced."""
    kernel = lease.kernel
    try:
        return await kernel.executor.execute(code, options.timeout)
    except ExecutionTimeout:
        try:
            await kernel.interrupt()
            await kernel.executor.wait_ready(RECOVERY_SECONDS)
        except (TimeoutError, GatewayError):
            lease.broken = True
        raise
    except KernelUnavailable:
        lease.broken = True
        raise


async def handle(
    pool: KernelPool, endpoint: Endpoint, request: dict[str, object], accept: str, options: HandlerOptions
) -> NotebookResponse:
    """Borrow a kernel, run REQUEST + the endpoint's cells (+ ResponseInfo), build the response."""
    code = code_with_request(options.language, json.dumps(request), endpoint.source)
    async with pool.lease(options.timeout) as lease:
        result = await _run(lease, code, options)
        if result.status == "error":
            return error_response(result, accept, options.debug)
        body, content_type = body_of(result)
        response = NotebookResponse(200, body, {"Content-Type": content_type})
        if endpoint.response_source:
            apply_response_info(response, await _run(lease, endpoint.response_source, options))
        return response
