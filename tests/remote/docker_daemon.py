"""A private Docker daemon for container kernels, and the images it runs (built offline, cached).

The daemon is Debian's `dockerd` with its own socket, exec root and bridge; its data root lives in the test
cache so the images survive between runs. Its bridge is 198.18.2.1/24 and its address pools are inside
198.18.0.0/15; it touches neither iptables nor ip_forward, so a container reaches this machine's bridge
address and nothing else. No image can be pulled: the base image is `docker import` of the debootstrap
tarball that provision.py made, and builds install from a folder of wheels.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.remote import provision

PREFIX = "fkgd-"
BRIDGE = f"{PREFIX}br"
GATEWAY_IP = "198.18.2.1"
RUN_DIR = Path("/run/fastkg-tests-docker")
LOCK = provision.CACHE / "docker.lock"

KERNEL_DOCKERFILE = """\
FROM {base}
COPY wheels /wheels
RUN python3 -m venv /opt/kernel \\
 && /opt/kernel/bin/pip install -q --no-index --find-links /wheels ipykernel 'gateway_provisioners==0.5.0' \\
 && /opt/kernel/bin/jupyter image-bootstrap install --languages python \\
 && rm -rf /wheels \\
 && useradd --create-home --uid 1000 --gid 100 jovyan \\
 && chmod 0755 /usr/local/bin/bootstrap-kernel.sh \\
 && chown -R 1000:100 /usr/local/bin/kernel-launchers /usr/local/bin/bootstrap-kernel.sh
ENV PATH=/opt/kernel/bin:/usr/local/bin:/usr/bin:/bin
USER 1000
CMD ["/usr/local/bin/bootstrap-kernel.sh"]
"""

PYTHON_DOCKERFILE = """\
FROM {base}
COPY wheels /wheels
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1
"""


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the private Docker daemon needs root"
    for cmd in ("dockerd", "docker"):
        if shutil.which(cmd) is None:
            return f"the Docker tests need `{cmd}` (run tests/remote/provision.py)"
    return None


@dataclass
class DockerDaemon:
    """A running private dockerd: its socket, its process and a `docker` command bound to it."""

    socket: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(RUN_DIR)}
        result = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed: {result.stderr[-3000:]}")
        return result

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def containers(self, label: str = "app=gateway-provisioners") -> list[str]:
        """Ids of the containers (running or not) carrying a label: kernel containers by default."""
        return self.docker("ps", "-aq", "--filter", f"label={label}").stdout.split()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _remove_bridge() -> None:
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _kill_recorded() -> None:
    """A daemon a killed run left behind, by the PID it recorded."""
    pidfile = RUN_DIR / "dockerd.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text())
        if Path(f"/proc/{pid}/exe").resolve().name == "dockerd":
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
    pidfile.unlink(missing_ok=True)


@contextlib.contextmanager
def docker_daemon(timeout: float = 120) -> Iterator[DockerDaemon]:
    """Start the private daemon (one per machine at a time), yield it, stop it and remove its bridge."""
    provision.CACHE.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _kill_recorded()
        _remove_bridge()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{GATEWAY_IP}/24", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        log_path = Path(tempfile.mkstemp(prefix="fastkg-dockerd-", suffix=".log")[1])
        socket = RUN_DIR / "docker.sock"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    "dockerd",
                    f"--host=unix://{socket}",
                    f"--data-root={provision.CACHE / 'docker'}",
                    f"--exec-root={RUN_DIR / 'exec'}",
                    f"--pidfile={RUN_DIR / 'dockerd.pid'}",
                    f"--bridge={BRIDGE}",
                    "--default-address-pool=base=198.18.64.0/18,size=24",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--ip-masq=false",
                    "--ip-forward=false",
                    "--userland-proxy=false",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        daemon = DockerDaemon(socket, process, log_path)
        try:
            deadline = time.monotonic() + timeout
            while daemon.docker("version", "--format", "{{.Server.Version}}", check=False).returncode:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not start: {daemon.log()[-3000:]}")
                time.sleep(0.3)
            yield daemon
        finally:
            with contextlib.suppress(Exception):
                for container in daemon.containers("app=gateway-provisioners"):
                    daemon.docker("rm", "-f", container, check=False)
            _stop(process)
            _remove_bridge()
            log_path.unlink(missing_ok=True)


def _build(daemon: DockerDaemon, tag: str, dockerfile: str, wheels: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="fastkg-image-") as context:
        shutil.copytree(wheels, Path(context) / "wheels")
        (Path(context) / "Dockerfile").write_text(dockerfile)
        daemon.docker("build", "-q", "-t", tag, context, timeout=1200)


def base_image(daemon: DockerDaemon) -> str:
    """Debian bookworm from debootstrap, imported once."""
    tarball = provision.rootfs_tarball()
    tag = f"fastkg-test/debian:{tarball.stem.rsplit('-', 1)[-1]}"
    if not daemon.has_image(tag):
        daemon.docker("import", str(tarball), tag, timeout=600)
    return tag


def kernel_image(daemon: DockerDaemon) -> str:
    """A kernel image for docker-provisioner: ipykernel and gateway_provisioners' bootstrap and launchers."""
    base = base_image(daemon)
    wheels = provision.wheel_dir()
    tag = f"fastkg-test/kernel-python:{provision.recipe_hash(base, wheels.name, KERNEL_DOCKERFILE)}"
    if not daemon.has_image(tag):
        _build(daemon, tag, KERNEL_DOCKERFILE.format(base=base), wheels)
    return tag


def python_image(daemon: DockerDaemon) -> str:
    """The base for the project's own Dockerfile: Debian's Python, with pip pointed at the wheel folder."""
    base = base_image(daemon)
    wheels = provision.wheel_dir()
    tag = f"fastkg-test/python:{provision.recipe_hash(base, wheels.name, PYTHON_DOCKERFILE)}"
    if not daemon.has_image(tag):
        _build(daemon, tag, PYTHON_DOCKERFILE.format(base=base), wheels)
    return tag
