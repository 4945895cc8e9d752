"""The `fastkg` command: argv -> Settings (flags over KG_* env over defaults) -> uvicorn, in-process."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from app import __version__
from app.config import Settings
from app.errors import ConfigurationError, GatewayError
from app.http.protocol import TolerantH11Protocol
from app.logs import configure_logging

log = logging.getLogger("app.cli")
STARTUP_FAILURE = 3
LOOPBACK = ("127.", "::1", "localhost")


def _option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastkg",
        description="A Jupyter kernel gateway. Every option also reads its KG_* (or FASTKG_*) variable; "
        "Kernel Gateway's --KernelGatewayApp.<option>=<value> spelling is accepted too.",
    )
    parser.add_argument("--version", action="version", version=f"fastkg {__version__}")
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", [])
        env = next((a for a in aliases if isinstance(a, str) and a.isupper()), "")
        parser.add_argument(
            _option_name(name), dest=name, nargs="?", const="true", default=None, help=f"({env})"
        )
    return parser


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """Accept KG's traitlets spelling, --KernelGatewayApp.port=9000 -> --port=9000, and its underscored
    aliases, --seed_uri=x -> --seed-uri=x."""
    out: list[str] = []
    for arg in argv:
        key, sep, value = arg[2:].partition("=")
        if arg.startswith("--") and "." in key:
            field = key.rsplit(".", 1)[1].replace("_", "-")
            field = {"ws-ping-interval-secs": "ws-ping-interval"}.get(field, field)
            # MappingKernelManager.cull_idle_timeout=... -> --cull-idle-timeout=... (same names as ours)
            arg = f"--{field}={value}" if value else f"--{field}"
        elif arg.startswith("--") and "_" in key:
            arg = f"--{key.replace('_', '-')}{sep}{value}"
        out.append(arg)
    return out


def load_settings(argv: Sequence[str]) -> Settings:
    namespace = build_parser().parse_args(normalise_argv(argv))
    overrides = {k: v for k, v in vars(namespace).items() if v is not None}
    return Settings(**overrides)


def bind_socket(host: str, port: int, retries: int) -> socket.socket:
    """Bind the first free port from `port` on, trying `retries` more (KG_PORT_RETRIES)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last: OSError | None = None
    for candidate in range(port, port + retries + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last = exc
            if exc.errno != errno.EADDRINUSE or port == 0:
                break
            continue
        sock.set_inheritable(True)
        return sock
    raise ConfigurationError(f"cannot listen on {host}:{port} (tried {retries + 1} ports): {last}")


async def preflight(settings: Settings) -> None:
    """Refuse to start on configuration that cannot work (missing notebook, unknown kernelspec ...)."""
    from jupyter_client.kernelspec import KernelSpecManager

    from app.lifespan import check_configuration

    await check_configuration(settings, KernelSpecManager())


def uvicorn_config(settings: Settings, app: object) -> uvicorn.Config:
    ssl: dict[str, object] = {}
    if settings.certfile:
        ssl = {"ssl_certfile": settings.certfile, "ssl_keyfile": settings.keyfile}
        if settings.ssl_version is not None:  # KG's SSLContext(protocol=ssl_version)
            ssl["ssl_version"] = settings.ssl_version
        if settings.client_ca:
            import ssl as ssl_module

            ssl.update(ssl_ca_certs=settings.client_ca, ssl_cert_reqs=ssl_module.CERT_REQUIRED)
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=TolerantH11Protocol,
        log_config=configure_logging(settings.log_level, settings.log_format.value),
        ws_max_size=10 * 1024 * 1024,
        # Kernel output is relayed on loopback or a LAN: compressing every frame costs the gateway far more
        # CPU than it saves (browsers always offer permessage-deflate). KG and Jupyter Server do not compress.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval or None,
        ws_ping_timeout=max(settings.ws_ping_interval, 20.0) if settings.ws_ping_interval else None,
        proxy_headers=False,  # KG_TRUST_XHEADERS is read as Tornado reads it (app/http/forwarded.py)
        timeout_graceful_shutdown=3,
        server_header=False,
        **ssl,  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "services":
        from app.services_cli import main as services_main

        return services_main(argv[1:])
    from app.main import create_app

    try:
        settings = load_settings(argv)
        asyncio.run(preflight(settings))
        app = create_app(settings)  # a plug-in personality may refuse its configuration here
        sock = bind_socket(settings.ip, settings.port, settings.port_retries)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"fastkg: invalid configuration: {problems}", file=sys.stderr)
        return 2
    except (ConfigurationError, GatewayError) as exc:
        print(f"fastkg: {exc}", file=sys.stderr)
        return 2
    config = uvicorn_config(settings, app)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    if not settings.token and not host.startswith(LOOPBACK):
        logging.getLogger("app").warning(
            "listening on %s without a token: anyone who can reach it can run code (set KG_AUTH_TOKEN)", host
        )
    logging.getLogger("app").info("fastkg %s listening on %s:%s", __version__, host, port)

    def stop(signum: int, frame: object) -> None:
        # Before uvicorn takes the signals over, and again when it re-raises them after its clean
        # shutdown (which would otherwise end the process by the signal, not with exit status 0).
        server.should_exit = True

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, stop)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE
