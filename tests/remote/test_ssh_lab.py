"""The SSH test hosts themselves: reachable over their veth links only, in the benchmarking range only."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from tests.remote import netns_hosts
from tests.remote.netns_hosts import SshLab

pytestmark = pytest.mark.timeout(120)


def ssh(lab: SshLab, ip: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i", str(lab.home / ".ssh" / "id_ed25519"),
            "-o", f"UserKnownHostsFile={lab.home / '.ssh' / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5",
            "-p", str(netns_hosts.SSH_PORT),
            f"root@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip


def test_each_host_answers_ssh_with_its_own_address(ssh_lab: SshLab) -> None:
    for host in ssh_lab.hosts:
        result = ssh(ssh_lab, host.ip, "ip -4 -o addr show dev eth0")
        assert result.returncode == 0, result.stderr
        assert f"inet {host.ip}/23" in result.stdout


def test_addresses_stay_in_the_benchmarking_range(ssh_lab: SshLab) -> None:
    benchmarking = ipaddress.ip_network("198.18.0.0/15")
    for host in ssh_lab.hosts:
        assert ipaddress.ip_address(host.ip) in benchmarking
        routes = host.exec("ip", "-4", "route", "show").stdout
        assert "default" not in routes  # a host can reach the bridge and nothing else
    guard = subprocess.run(["ip", "route", "show", "type", "unreachable"], capture_output=True, text=True)
    assert "198.18.0.0/15" in guard.stdout
    assert "metric 4000" in guard.stdout


def test_a_cut_link_is_unreachable_and_comes_back(ssh_lab: SshLab) -> None:
    host = ssh_lab.host(1)
    host.cut()
    try:
        cut = ssh(ssh_lab, host.ip, "true")
        assert cut.returncode != 0
        # the guard route answers for the range, so nothing goes towards the default route
        route = subprocess.run(["ip", "route", "get", host.ip], capture_output=True, text=True)
        assert "default" not in route.stdout
        assert "via" not in route.stdout
    finally:
        host.restore()
    assert ssh(ssh_lab, host.ip, "true").returncode == 0
