"""Domain errors and the one table that turns any failure into a JSON `{reason, message}` response."""

from __future__ import annotations

import math
from collections.abc import Sequence
from http import HTTPStatus


class GatewayError(Exception):
    """Base of every error the gateway reports to a client. `message` is safe to show."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers

    @property
    def reason(self) -> str:
        return self.status.phrase


class BadRequest(GatewayError):
    status = HTTPStatus.BAD_REQUEST


class Unauthorized(GatewayError):
    status = HTTPStatus.UNAUTHORIZED


class Forbidden(GatewayError):
    status = HTTPStatus.FORBIDDEN


class NotFound(GatewayError):
    status = HTTPStatus.NOT_FOUND


class KernelNotFound(NotFound):
    def __init__(self, kernel_id: str) -> None:
        super().__init__(f"Kernel does not exist: {kernel_id}")


class KernelSpecNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such kernel: {name}")


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session not found: {session_id}")


class MethodNotAllowed(GatewayError):
    """A known path asked with a method it does not serve; `allowed` is exactly what the path serves."""

    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, message: str = "Method Not Allowed", allowed: Sequence[str] = ()) -> None:
        super().__init__(message, {"Allow": ", ".join(allowed)} if allowed else None)


class Conflict(GatewayError):
    status = HTTPStatus.CONFLICT


class Unprocessable(GatewayError):
    """A well-formed request whose content cannot be used (a bad notebook or service setting)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class ServiceNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such service: {name}")


class ServiceUnavailable(GatewayError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class PayloadTooLarge(GatewayError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class TooManyRequests(GatewayError):
    """Refused for a while (too many failed logins); `retry_after` seconds, rounded up, in Retry-After."""

    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, {"Retry-After": str(max(1, math.ceil(retry_after)))})


class KernelLimitReached(GatewayError):
    """KG answers 403 when KG_MAX_KERNELS kernels are running."""

    status = HTTPStatus.FORBIDDEN


class KernelStartFailed(GatewayError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR


class SeedFailed(GatewayError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR


class KernelUnavailable(GatewayError):
    """The kernel died or could not be reached while serving a request."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class ExecutionTimeout(GatewayError):
    status = HTTPStatus.GATEWAY_TIMEOUT


class ConfigurationError(Exception):
    """Invalid configuration: the gateway refuses to start."""


def error_body(status: int, message: str) -> dict[str, str]:
    """The JSON body of every error response, as Kernel Gateway and Jupyter Server shape it."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return {"reason": reason, "message": message}
