"""`fastkg services list|deploy|reload|undeploy|rollback`: drive a running gateway's /api/services."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from app.config import Settings

SETTINGS = ("prefix", "kernel_name", "pool_min", "pool_max", "cwd", "env", "timeout", "body_limit")


def _gateway_defaults() -> tuple[str, str | None]:
    """URL and token from the same KG_* variables the gateway reads (KG_PORT, KG_BASE_URL, KG_AUTH_TOKEN)."""
    try:
        settings = Settings()
    except ValidationError:
        return "http://127.0.0.1:8888", None
    host = "127.0.0.1" if settings.ip in ("0.0.0.0", "", "::") else settings.ip
    return f"http://{host}:{settings.port}{settings.base_url}", settings.token


def build_parser() -> argparse.ArgumentParser:
    url, token = _gateway_defaults()
    parser = argparse.ArgumentParser(
        prog="fastkg services", description="Manage a gateway's notebook services"
    )
    parser.add_argument("--url", default=url, help=f"gateway base URL (default {url})")
    parser.add_argument("--token", default=token, help="API token (default: KG_AUTH_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list services")
    deploy = commands.add_parser("deploy", help="deploy a notebook (a new version if the service exists)")
    deploy.add_argument(
        "notebook", help="a local .ipynb file to upload, or an http(s) URL / root path with --source"
    )
    deploy.add_argument("--name", required=True)
    deploy.add_argument(
        "--source", action="store_true", help="send NOTEBOOK as a source for the server to read"
    )
    for setting in SETTINGS:
        deploy.add_argument("--" + setting.replace("_", "-"), dest=setting)
    reload = commands.add_parser("reload", help="deploy a service's source again (the root's: KG_SEED_URI)")
    reload.add_argument("name")
    undeploy = commands.add_parser("undeploy", help="drain and remove a service")
    undeploy.add_argument("name")
    rollback = commands.add_parser("rollback", help="activate an earlier version (default: the previous one)")
    rollback.add_argument("name")
    rollback.add_argument("--version", type=int)
    return parser


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise SystemExit(f"fastkg services: {response.status_code} {message}")
    return response


def _show(service: dict[str, Any]) -> str:
    version = service.get("version") or {}
    pool = service.get("pool", {})
    version_id = version.get("id", "-")
    line = (
        f"{service['name']:<20} {service['prefix'] or '/':<28} {service['state']:<10} v{version_id!s:<4} "
        f"pool {pool.get('size')}/{pool.get('max')} busy {pool.get('busy')}"
    )
    return line + (f"  error: {service['error']}" if service.get("error") else "")


def _deploy(client: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    fields = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.source or args.notebook.startswith(("http://", "https://")):
        body = {"name": args.name, "source": args.notebook, **fields}
        if "env" in body:
            body["env"] = json.loads(body["env"])
        arguments: dict[str, Any] = {"json": body}
    else:
        raw = Path(args.notebook).read_bytes()
        files = {"notebook": (Path(args.notebook).name, raw, "application/x-ipynb+json")}
        arguments = {"files": files, "data": {"name": args.name, **fields}}
    exists = client.get(f"api/services/{args.name}").status_code == 200
    if exists:
        return dict(_request(client, "PUT", f"api/services/{args.name}", **arguments).json())
    return dict(_request(client, "POST", "api/services", **arguments).json())


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    headers = {"Authorization": f"token {args.token}"} if args.token else {}
    base = args.url.rstrip("/") + "/"
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        try:
            if args.command == "list":
                for service in _request(client, "GET", "api/services").json():
                    print(_show(service))
            elif args.command == "deploy":
                print(_show(_deploy(client, args)))
            elif args.command == "reload":
                print(_show(_request(client, "POST", f"api/services/{args.name}/reload").json()))
            elif args.command == "undeploy":
                _request(client, "DELETE", f"api/services/{args.name}")
                print(f"{args.name} undeployed")
            else:
                body = {"version": args.version} if args.version is not None else {}
                print(_show(_request(client, "POST", f"api/services/{args.name}/rollback", json=body).json()))
        except httpx.HTTPError as exc:
            print(f"fastkg services: cannot reach {base}: {exc}", file=sys.stderr)
            return 1
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0
