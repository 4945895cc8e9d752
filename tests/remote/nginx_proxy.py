"""nginx (Debian's package) in front of fastkg replicas: config in a temp dir, started and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = "/usr/sbin/nginx"
# One line per proxied request: which upstream answered it (tests check the affinity with it).
LOG_FORMAT = "'$request_method $uri $upstream_addr $status'"


def unavailable_reason() -> str | None:
    if not Path(NGINX).exists():
        return "nginx is missing (run tests/remote/provision.py: Debian's nginx-light)"
    return None


@dataclass
class Nginx:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def access_log(self) -> list[tuple[str, str, str, str]]:
        """(method, path, upstream address, status) for every request so far."""
        path = self.workdir / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [tuple(line.split(" ", 3)) for line in lines]  # type: ignore[misc]

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _main_config(workdir: Path, site: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dir, which is root's
    return f"""{user}worker_processes 1;
daemon off;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
    log_format affinity {LOG_FORMAT};
    access_log {workdir / "access.log"} affinity;
{temp}
    include {site};
}}
"""


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("nginx did not listen")
        time.sleep(0.1)


@contextlib.contextmanager
def nginx(site_config: str, port: int, workdir: Path, *, timeout: float = 30) -> Iterator[Nginx]:
    """Run nginx with `site_config` (an http-level include) in `workdir`; stop it by PID afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    site = workdir / "site.conf"
    site.write_text(site_config)
    config = workdir / "nginx.conf"
    config.write_text(_main_config(workdir, site))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(workdir), "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
    with (workdir / "nginx.out").open("wb") as out:
        process = subprocess.Popen(
            [NGINX, "-p", str(workdir), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_listening(port, process, time.monotonic() + timeout)
        yield Nginx(f"http://127.0.0.1:{port}", process, workdir)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            shutil.rmtree(workdir / kind, ignore_errors=True)
