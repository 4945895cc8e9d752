"""Fixtures for kernels on real remote hosts: SSH hosts in network namespaces, kernelspecs, a gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote import netns_hosts
from tests.remote.netns_hosts import SshLab
from tests.support import Gateway, fastkg_process

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


def install_ssh_spec(prefix: Path, hosts: list[str], name: str = "ssh_python") -> Path:
    """gateway_provisioners' own CLI makes the kernelspec; the remote side runs this venv's Python."""
    args = [f"--remote-hosts={h}" for h in hosts]
    subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-ssh-spec")),
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
    # The namespaces share this machine's filesystem: the same interpreter (with ipykernel) runs there.
    spec["argv"][0] = sys.executable
    spec_file.write_text(json.dumps(spec, indent=2))
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
        # the provisioner refuses KERNEL_USERNAME=root by default (GP_UNAUTHORIZED_USERS)
        "KERNEL_USERNAME": "fastkg-test",
        **extra,
    }


@pytest.fixture
def ssh_gateway(ssh_lab: SshLab, ssh_specs: Path, tmp_path: Path) -> Iterator[Gateway]:
    """The real `fastkg` command whose default kernel runs on the SSH hosts."""
    with fastkg_process(gateway_env(ssh_lab, ssh_specs), tmp_path) as gateway:
        yield gateway
