"""SSH hosts for remote kernels: network namespaces on a test bridge, each with its own Debian sshd.

Addresses are only in 198.18.0.0/15 (the benchmarking range): the bridge is 198.18.0.1/23 on this machine's
side, hosts are 198.18.1.x. While the hosts exist an `unreachable 198.18.0.0/15` route with a high metric
makes sure a downed link never sends a packet off the machine (the /23 on the bridge is more specific and wins
while it is up). Every name starts with PREFIX, which this module owns: `cleanup()` removes whatever a crashed
run left, after taking the same machine-wide lock that a live lab holds.

The namespaces share the filesystem, so a kernel on a "remote" host runs this checkout's venv Python.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PREFIX = "fkgt-"
BRIDGE = f"{PREFIX}br"
GATEWAY_IP = "198.18.0.1"
BRIDGE_CIDR = f"{GATEWAY_IP}/23"
GUARD_ROUTE = ["unreachable", "198.18.0.0/15", "metric", "4000"]
SSH_PORT = 2222
LOCK = Path("/run/fastkg-tests-netns.lock")


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=60)


def unavailable_reason() -> str | None:
    """Why SSH hosts cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "SSH test hosts need root (network namespaces)"
    for cmd in ("ip", "ssh-keygen"):
        if shutil.which(cmd) is None:
            return f"SSH test hosts need `{cmd}` (run tests/remote/provision.py)"
    if not Path("/usr/sbin/sshd").exists():
        return "SSH test hosts need openssh-server (run tests/remote/provision.py)"
    return None


@dataclass
class SshHost:
    """One namespace with a veth link to the bridge and an sshd listening on its address."""

    name: str
    ip: str
    link: str  # the bridge side of the veth pair: set it down to cut the host off
    sshd: subprocess.Popen[bytes] | None = None
    seen: set[int] = field(default_factory=set)  # every kernel-side PID observed: none may outlive the lab

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.name, *cmd, check=check)

    def pids(self) -> list[int]:
        """Every process living in this host's namespace (sshd, kernels, their launchers)."""
        result = run("ip", "netns", "pids", self.name, check=False)
        return [int(p) for p in result.stdout.split()]

    def kernel_pids(self) -> list[int]:
        """Processes in the namespace other than its sshd (and sshd's per-connection children)."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                exe = os.readlink(f"/proc/{pid}/exe")
                if not exe.endswith("/sshd"):
                    found.append(pid)
        self.seen.update(found)
        return found

    def cut(self) -> None:
        run("ip", "link", "set", self.link, "down")

    def restore(self) -> None:
        run("ip", "link", "set", self.link, "up")


@dataclass
class SshLab:
    """The bridge, the guard route, the hosts and the throw-away keys of one test session."""

    workdir: Path
    hosts: list[SshHost] = field(default_factory=list)
    home: Path = field(init=False)  # HOME for the gateway: ~/.ssh holds the client key and known_hosts

    def __post_init__(self) -> None:
        self.home = self.workdir / "home"

    def host(self, index: int) -> SshHost:
        return self.hosts[index]

    def env(self) -> dict[str, str]:
        """Environment for a gateway whose distributed kernels go to these hosts."""
        return {
            "HOME": str(self.home),
            "GP_REMOTE_USER": "root",
            "GP_SSH_PORT": str(SSH_PORT),
            "GP_RESPONSE_IP": GATEWAY_IP,
            "GP_KERNEL_LOG_DIR": str(self.workdir / "kernel-logs"),
            "GP_REMOTE_HOSTS": ",".join(h.ip for h in self.hosts),
            # The provisioner's liveness poll connects to the kernel's listener, from the event loop, with
            # this timeout (10 ms by default): too short on a loaded machine, where a late handshake reads
            # as a dead kernel and the restarter restarts it.
            "GP_SOCKET_TIMEOUT": "0.5",
        }


def _keygen(path: Path) -> str:
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fastkg-test", "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


def _sshd_config(lab: SshLab, host: SshHost) -> Path:
    config = lab.workdir / f"sshd-{host.name}.conf"
    config.write_text(
        "\n".join(
            [
                f"Port {SSH_PORT}",
                f"ListenAddress {host.ip}",
                f"HostKey {lab.workdir / 'host_key'}",
                f"AuthorizedKeysFile {lab.workdir / 'authorized_keys'}",
                f"PidFile {lab.workdir / f'sshd-{host.name}.pid'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "MaxStartups 64:30:128",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    return config


def _wait_port(host: SshHost, deadline: float) -> None:
    """Wait until sshd accepts on the host's address (probed from inside the namespace)."""
    probe = f"import socket; socket.create_connection(('{host.ip}', {SSH_PORT}), timeout=1).close()"
    while True:
        if host.sshd is not None and host.sshd.poll() is not None:
            raise RuntimeError(f"sshd in {host.name} exited with {host.sshd.returncode}")
        if host.exec("python3", "-c", probe, check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"sshd in {host.name} did not listen")
        time.sleep(0.2)


def _host_ip(index: int) -> str:
    return f"198.18.1.{10 + index}"


def _add_host(lab: SshLab, index: int, log: IO[bytes]) -> SshHost:
    name = f"{PREFIX}h{index}"
    host = SshHost(name=name, ip=_host_ip(index), link=f"{PREFIX}h{index}a")
    lab.hosts.append(host)  # registered first, so a failure below still tears it down
    run("ip", "netns", "add", name)
    run("ip", "link", "add", host.link, "type", "veth", "peer", "name", f"{PREFIX}h{index}b")
    run("ip", "link", "set", f"{PREFIX}h{index}b", "netns", name)
    run("ip", "link", "set", host.link, "master", BRIDGE, "up")
    host.exec("ip", "link", "set", "lo", "up")
    host.exec("ip", "link", "set", f"{PREFIX}h{index}b", "name", "eth0")
    host.exec("ip", "addr", "add", f"{host.ip}/23", "dev", "eth0")
    host.exec("ip", "link", "set", "eth0", "up")
    config = _sshd_config(lab, host)
    host.sshd = subprocess.Popen(
        ["ip", "netns", "exec", name, "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return host


def _write_keys(lab: SshLab, ips: list[str]) -> None:
    ssh_dir = lab.home / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    (lab.workdir / "kernel-logs").mkdir()
    host_pub = _keygen(lab.workdir / "host_key")
    client_pub = _keygen(ssh_dir / "id_ed25519")
    (lab.workdir / "authorized_keys").write_text(client_pub + "\n")
    key_type, key_data = host_pub.split()[:2]
    (ssh_dir / "known_hosts").write_text("".join(f"[{ip}]:{SSH_PORT} {key_type} {key_data}\n" for ip in ips))


@contextlib.contextmanager
def ssh_lab(count: int = 2, *, timeout: float = 60) -> Iterator[SshLab]:
    """Build `count` SSH hosts, yield them, and remove everything again (also when building fails)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one lab per machine: the names and addresses are fixed
        _remove_all()  # what a killed run left behind
        lab = SshLab(Path(tempfile.mkdtemp(prefix="fastkg-ssh-lab-")))
        log = (lab.workdir / "sshd.log").open("ab")
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
            run("ip", "link", "add", BRIDGE, "type", "bridge")
            run("ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE)
            run("ip", "link", "set", BRIDGE, "up")
            run("ip", "route", "add", *GUARD_ROUTE)
            _write_keys(lab, [_host_ip(i) for i in range(count)])
            for index in range(count):
                _add_host(lab, index, log)
            deadline = time.monotonic() + timeout
            for host in lab.hosts:
                _wait_port(host, deadline)
            yield lab
        finally:
            _teardown(lab)
            log.close()
            shutil.rmtree(lab.workdir, ignore_errors=True)


def _kill_namespace(name: str) -> None:
    """SIGKILL every process in a namespace of ours, by PID, until none is left."""
    for _ in range(50):
        pids = [int(p) for p in run("ip", "netns", "pids", name, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _teardown(lab: SshLab) -> None:
    for host in lab.hosts:
        if host.sshd is not None:
            with contextlib.suppress(ProcessLookupError):
                host.sshd.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.sshd.wait(10)
    _remove_all()


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def leftovers(lab: SshLab) -> list[str]:
    """What survived a lab's teardown: namespaces, links, the guard route, processes (empty when clean)."""
    found = [f"namespace {n}" for n in namespaces()] + [f"link {n}" for n in links()]
    if "198.18.0.0/15" in run("ip", "route", "show", "type", "unreachable", check=False).stdout:
        found.append("guard route")
    pids = {pid for host in lab.hosts for pid in host.seen} | {h.sshd.pid for h in lab.hosts if h.sshd}
    found += [f"process {pid}" for pid in sorted(pids) if alive(pid)]
    return found


def namespaces() -> list[str]:
    """Namespaces with our prefix that exist now."""
    listing = run("ip", "netns", "list", check=False).stdout.split("\n")
    return [line.split()[0] for line in listing if line.startswith(PREFIX)]


def links() -> list[str]:
    listing = run("ip", "-o", "link", "show", check=False).stdout.splitlines()
    names = [line.split(":")[1].strip().split("@")[0] for line in listing if ":" in line]
    return [n for n in names if n.startswith(PREFIX)]


def _remove_all() -> None:
    """Remove every namespace, link and the guard route that carry our prefix (idempotent)."""
    for name in namespaces():
        _kill_namespace(name)
        run("ip", "netns", "delete", name, check=False)
    for link in links():
        run("ip", "link", "delete", link, check=False)
    while run("ip", "route", "del", *GUARD_ROUTE, check=False).returncode == 0:
        pass


def cleanup() -> None:
    """Session-level cleanup: whatever this prefix owns goes, once no live lab holds the lock."""
    if os.geteuid() != 0:
        return
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_all()
