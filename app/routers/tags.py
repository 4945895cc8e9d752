"""OpenAPI tags, one per resource."""

from enum import StrEnum


class Tag(StrEnum):
    API = "api"
    KERNELS = "kernels"
    KERNELSPECS = "kernelspecs"
    SESSIONS = "sessions"
    CHANNELS = "channels"
    HEALTH = "health"
    METRICS = "metrics"
    ADMIN = "admin"
    SERVICES = "services"
