"""Prepare what the remote-kernel test hosts are made of: Debian packages, a root filesystem, wheels.

Run by `make test-remote` before pytest (as root on a fresh Debian machine it installs what it needs;
elsewhere it reports what is missing and the remote tests skip with that reason). Everything slow is
cached under CACHE (keyed by a hash of its recipe), so a second run takes seconds. Stdlib only.

    python tests/remote/provision.py          # install packages, build the rootfs tarball and wheel folder
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FASTKG_TEST_CACHE", "/var/cache/fastkg-tests"))
MIRROR = os.environ.get("FASTKG_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"

# Debian packages the hosts are made of: command -> package.
PACKAGES = {
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nginx": "nginx-light",
    "kubectl": "kubernetes-client",  # `kubectl kustomize` renders deploy/kubernetes
}
# The container root filesystem: what the kernel image and the project's image are built on.
ROOTFS_PACKAGES = ["python3", "python3-venv", "python3-pip", "ca-certificates", "tini", "procps"]
# Wheels for the images (no network inside a build): the kernel side and the gateway's own dependencies.
KERNEL_WHEELS = ["ipykernel", "gateway_provisioners==0.5.0", "docker"]


def log(message: str) -> None:
    print(f"[provision] {message}", flush=True)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock in the cache, so two runs on one machine never build the same thing at once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def recipe_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def missing_commands() -> list[str]:
    return [cmd for cmd in PACKAGES if shutil.which(cmd) is None and not Path("/usr/sbin", cmd).exists()]


def install_packages() -> None:
    missing = missing_commands()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        log(f"cannot install {missing}: not root on a Debian machine; the remote tests will skip")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get install {sorted({PACKAGES[c] for c in missing})} (once)")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    packages = sorted({PACKAGES[c] for c in missing})
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    # docker.io's maintainer scripts may start a system daemon where an init system runs; the tests use
    # their own daemon and never that one.


def rootfs_tarball() -> Path:
    """A Debian root filesystem as a tarball for `docker import`, made once with debootstrap."""
    key = recipe_hash(SUITE, MIRROR, ROOTFS_PACKAGES)
    tarball = CACHE / f"rootfs-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    with locked("rootfs"):
        if tarball.exists():
            return tarball
        work = CACHE / f"rootfs-{key}.build"
        shutil.rmtree(work, ignore_errors=True)
        log(f"debootstrap {SUITE} into {work} (a few minutes, once)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(ROOTFS_PACKAGES)}",
                SUITE,
                str(work),
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Smaller and reproducible enough: no apt lists or caches in the image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (work / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(work), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def project_requirements() -> list[str]:
    """The gateway's runtime dependencies, read from pyproject.toml (tomllib is stdlib from 3.11)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [str(dep) for dep in project["dependencies"]]


def wheel_dir() -> Path:
    """Wheels for everything the images install, downloaded on the host (builds have no network)."""
    requirements = sorted({*KERNEL_WHEELS, *project_requirements(), "setuptools>=68", "wheel"})
    key = recipe_hash(requirements, sys.version_info[:2])
    target = CACHE / f"wheels-{key}"
    if (target / ".complete").exists():
        return target
    with locked("wheels"):
        if (target / ".complete").exists():
            return target
        log(f"pip download {len(requirements)} requirements into {target}")
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--dest", str(target), *requirements],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"pip download failed:\n{result.stderr[-4000:]}")
        (target / ".complete").touch()
    return target


def main() -> int:
    started = time.monotonic()
    install_packages()
    if missing_commands():
        log(f"missing {missing_commands()}; remote tests will skip")
        return 0
    tarball = rootfs_tarball()
    wheels = wheel_dir()
    log(f"ready in {time.monotonic() - started:.1f} s: rootfs {tarball.name}, wheels {wheels.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
