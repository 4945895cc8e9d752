"""Fixtures for kernels on real remote hosts: SSH hosts in network namespaces, kernelspecs, a gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote import docker_daemon, netns_hosts
from tests.remote.docker_daemon import DockerDaemon
from tests.remote.netns_hosts import SshLab
from tests.support import Gateway, fastkg_process, free_port

TOKEN = "remote-test-token"


@pytest.fixture(scope="session", autouse=True)
def _remove_leftovers() -> Iterator[None]:
    """Before and after the session: nothing with our prefix survives, whatever happened in between."""
    netns_hosts.cleanup()
    yield
    netns_hosts.cleanup()


@pytest.fixture(scope="session")
def ssh_lab() -> Iterator[SshLab]:
    reason = netns_hosts.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with netns_hosts.ssh_lab(2) as lab:
        yield lab
    # The teardown is part of what is tested: no namespace, link, route or remote process survives it.
    assert netns_hosts.leftovers(lab) == []


def install_spec(tool: str, prefix: Path, name: str, *args: str) -> Path:
    """A kernelspec made by one of gateway_provisioners' own CLIs (jupyter-ssh-spec, jupyter-docker-spec)."""
    subprocess.run(
        [
            str(Path(sys.executable).with_name(tool)),
            "install",
            f"--prefix={prefix}",
            f"--kernel-name={name}",
            f"--display-name=Python on {name}",
            "--log-level=ERROR",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    spec_file = prefix / "share" / "jupyter" / "kernels" / name / "kernel.json"
    spec = json.loads(spec_file.read_text())
    # `python` would be whatever PATH finds: the launcher (and, on the SSH hosts, which share this
    # filesystem, the kernel) runs this venv's interpreter, which has ipykernel and the provisioners.
    spec["argv"][0] = sys.executable
    spec_file.write_text(json.dumps(spec, indent=2))
    return spec_file


def install_ssh_spec(prefix: Path, hosts: list[str], name: str = "ssh_python") -> Path:
    """A distributed kernelspec over `hosts`; the remote side runs this venv's Python."""
    install_spec("jupyter-ssh-spec", prefix, name, *(f"--remote-hosts={h}" for h in hosts))
    return prefix / "share" / "jupyter"


@pytest.fixture(scope="session")
def ssh_specs(ssh_lab: SshLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A JUPYTER_PATH holding `ssh_python`, a distributed kernelspec over both hosts."""
    prefix = tmp_path_factory.mktemp("ssh-specs")
    yield install_ssh_spec(prefix, [h.ip for h in ssh_lab.hosts])
    shutil.rmtree(prefix, ignore_errors=True)


def gateway_env(lab: SshLab, specs: Path, **extra: str) -> dict[str, str]:
    return {
        **lab.env(),
        "JUPYTER_PATH": str(specs),
        "KG_AUTH_TOKEN": TOKEN,
        "KG_LIST_KERNELS": "true",
        "KG_DEFAULT_KERNEL_NAME": "ssh_python",
        "GP_RESPONSE_PORT": str(free_port()),  # one response socket per gateway: replicas run side by side
        **extra,
    }


@pytest.fixture
def ssh_gateway(ssh_lab: SshLab, ssh_specs: Path, tmp_path: Path) -> Iterator[Gateway]:
    """The real `fastkg` command whose default kernel runs on the SSH hosts."""
    with fastkg_process(gateway_env(ssh_lab, ssh_specs), tmp_path) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def docker() -> Iterator[DockerDaemon]:
    """The private Docker daemon; skipped, saying why, on a machine where it cannot start."""
    reason = docker_daemon.unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        context = docker_daemon.docker_daemon()
        daemon = context.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"the private Docker daemon cannot start on this machine: {str(exc)[:500]}")
    try:
        yield daemon
        assert daemon.containers() == []  # every kernel container went with its kernel
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def docker_specs(docker: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUPYTER_PATH holding `docker_python`, a docker-provisioner kernelspec on the test kernel image."""
    prefix = tmp_path_factory.mktemp("docker-specs")
    image = docker_daemon.kernel_image(docker)
    install_spec("jupyter-docker-spec", prefix, "docker_python", f"--image-name={image}")
    return prefix / "share" / "jupyter"


@pytest.fixture
def docker_gateway(docker: DockerDaemon, docker_specs: Path, tmp_path: Path) -> Iterator[Gateway]:
    """The real `fastkg` command whose default kernel runs in a container of the private daemon."""
    env = {
        "JUPYTER_PATH": str(docker_specs),
        "KG_AUTH_TOKEN": TOKEN,
        "KG_LIST_KERNELS": "true",
        "KG_DEFAULT_KERNEL_NAME": "docker_python",
        "DOCKER_HOST": docker.host,
        # the launcher runs with the kernel's env (KG's policy): it needs the daemon's address
        "KG_ENV_PROCESS_WHITELIST": "DOCKER_HOST",
        "GP_RESPONSE_IP": docker_daemon.GATEWAY_IP,
        "GP_RESPONSE_PORT": str(free_port()),
    }
    with fastkg_process(env, tmp_path) as gateway:
        yield gateway
