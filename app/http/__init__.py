"""The ASGI edge: middleware that every request passes through before routing."""
