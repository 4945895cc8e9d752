"""Black-box: KG_CERTFILE/KG_KEYFILE serve HTTPS and WSS (TLS 1.2 or 1.3 negotiated; KG_SSL_VERSION pins the
protocol as in KG), and KG_CLIENT_CA makes a client certificate signed by it mandatory."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.support import ROOT, free_port, stop_process

TOKEN = "tls-token-0123456789"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA, certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if certificate:
        ca.issue_cert("client.example").configure_cert(context)
    return context


@contextmanager
def tls_gateway(
    ca: trustme.CA, tmp_path: Path, client_ca: bool = False, ssl_version: int | None = None
) -> Iterator[str]:
    """The real `fastkg` command serving TLS with a certificate for 127.0.0.1; yields its https URL."""
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "FASTKG_"))}
    env.update(
        KG_IP="127.0.0.1",
        KG_PORT=str(port),
        KG_PORT_RETRIES="0",
        KG_AUTH_TOKEN=TOKEN,
        KG_CERTFILE=str(tmp_path / "cert.pem"),
        KG_KEYFILE=str(tmp_path / "key.pem"),
        **({"KG_CLIENT_CA": str(tmp_path / "ca.pem")} if client_ca else {}),
        **({"KG_SSL_VERSION": str(ssl_version)} if ssl_version is not None else {}),
    )
    log_path = tmp_path / "fastkg.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"https://127.0.0.1:{port}"
    try:
        probe = client_context(ca, certificate=True)
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, "fastkg did not answer over TLS"
            with suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", verify=probe, timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


def negotiated(port: int, context: ssl.SSLContext) -> str | None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


async def test_https_and_wss_with_tls_1_2_or_1_3(ca: trustme.CA, tmp_path: Path) -> None:
    with tls_gateway(ca, tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        context = client_context(ca)
        assert negotiated(port, context) == "TLSv1.3"  # KG would pin TLS 1.2
        older = client_context(ca)
        older.maximum_version = ssl.TLSVersion.TLSv1_2
        assert negotiated(port, older) == "TLSv1.2"
        headers = {"Authorization": f"token {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, verify=context, headers=headers, timeout=60) as client:
            assert (await client.get("/api")).status_code == 200
            started = await client.post("/api/kernels", json={})
            assert started.status_code == 201, started.text
            kernel_id = started.json()["id"]
            wss = f"wss://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
            async with connect(wss, ssl=context, open_timeout=30) as ws:
                assert ws.protocol.state.name == "OPEN"
            assert (await client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port is no answer
            httpx.get(f"http://127.0.0.1:{port}/api", timeout=5)


async def test_client_ca_requires_a_client_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    with tls_gateway(ca, tmp_path, client_ca=True) as url:
        headers = {"Authorization": f"token {TOKEN}"}
        signed = client_context(ca, certificate=True)
        async with httpx.AsyncClient(base_url=url, verify=signed, headers=headers, timeout=60) as client:
            assert (await client.get("/api")).status_code == 200
        stranger = client_context(ca)
        trustme.CA().issue_cert("client.example").configure_cert(stranger)  # signed by another CA
        for refused in (client_context(ca), stranger):  # no certificate, and a certificate of another CA
            with pytest.raises(httpx.TransportError):
                async with httpx.AsyncClient(base_url=url, verify=refused, timeout=10) as client:
                    await client.get("/api", headers=headers)


async def test_ssl_version_pins_the_protocol_as_in_kg(ca: trustme.CA, tmp_path: Path) -> None:
    """KG_SSL_VERSION=5 (ssl.PROTOCOL_TLSv1_2) is KG's default pin: a TLS 1.3 client gets TLS 1.2."""
    with tls_gateway(ca, tmp_path, ssl_version=5) as url:
        port = int(url.rsplit(":", 1)[1])
        assert negotiated(port, client_context(ca)) == "TLSv1.2"
        only_13 = client_context(ca)
        only_13.minimum_version = ssl.TLSVersion.TLSv1_3
        with pytest.raises(ssl.SSLError):
            negotiated(port, only_13)
