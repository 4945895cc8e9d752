"""Kernelspecs and their resource files, including path traversal and NUL bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from jupyter_client.kernelspec import KernelSpecManager

from tests.integration.test_kernels_rest import assert_error
from tests.support import Gateway, serve

PYTHON3_DIR = Path(KernelSpecManager().get_kernel_spec("python3").resource_dir)


async def raw_get(gw: Gateway, path: str, *, token: bool = True) -> tuple[int, bytes]:
    """Send the request line byte-for-byte (httpx would normalise `..` segments away)."""
    parts = urlsplit(gw.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    auth = f"Authorization: token {gw.token}\r\n" if gw.token and token else ""
    writer.write(
        f"GET {parts.path}{path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_list_kernelspecs(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/kernelspecs")
    assert response.status_code == 200
    body = response.json()
    assert body["default"] == "python3"
    assert "python3" in body["kernelspecs"]
    python3 = body["kernelspecs"]["python3"]
    assert python3["name"] == "python3"
    assert python3["spec"]["language"] == "python"
    assert python3["spec"]["display_name"]
    assert isinstance(python3["spec"]["argv"], list)
    assert python3["spec"]["argv"]
    assert python3["resources"]["logo-64x64"] == "/kernelspecs/python3/logo-64x64.png"
    assert python3["resources"]["logo-32x32"] == "/kernelspecs/python3/logo-32x32.png"
    # ?user= is tolerated and changes nothing
    with_user = await gateway.client.get("/api/kernelspecs", params={"user": "someone"})
    assert with_user.status_code == 200
    assert with_user.json() == body


async def test_get_one_kernelspec(gateway: Gateway) -> None:
    listed = (await gateway.client.get("/api/kernelspecs")).json()["kernelspecs"]["python3"]
    response = await gateway.client.get("/api/kernelspecs/python3")
    assert response.status_code == 200
    assert response.json() == listed
    body = assert_error(await gateway.client.get("/api/kernelspecs/no-such-spec"), 404)
    assert "no-such-spec" in body["message"]


async def test_resource_files_are_served(gateway: Gateway) -> None:
    resources = (await gateway.client.get("/api/kernelspecs/python3")).json()["resources"]
    for key in ("logo-64x64", "logo-32x32"):
        response = await gateway.client.get(resources[key])
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content == (PYTHON3_DIR / f"{key}.png").read_bytes()
    svg = await gateway.client.get("/kernelspecs/python3/logo-svg.svg")
    assert svg.status_code == 200
    assert svg.content == (PYTHON3_DIR / "logo-svg.svg").read_bytes()
    kernel_json = await gateway.client.get("/kernelspecs/python3/kernel.json")
    assert kernel_json.status_code == 200
    assert kernel_json.json()["language"] == "python"
    assert_error(await gateway.client.get("/kernelspecs/python3/missing.png"), 404)
    assert_error(await gateway.client.get("/kernelspecs/no-such-spec/logo-64x64.png"), 404)


TRAVERSALS = [
    "/kernelspecs/python3/../../../../../../etc/passwd",
    "/kernelspecs/python3/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/kernelspecs/python3/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/kernelspecs/python3/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/kernelspecs/python3//etc/passwd",
    "/kernelspecs/python3/%2fetc%2fpasswd",
    "/kernelspecs/python3/..",
    "/kernelspecs/python3/.",
    "/kernelspecs/..%2f..%2f..%2fetc/passwd",
    "/kernelspecs/%2e%2e/python3/kernel.json",
    "/kernelspecs/python3/logo-64x64.png%00.txt",
    "/kernelspecs/python3/%00",
    "/kernelspecs/python3/..%00/kernel.json",
    "/kernelspecs/py%00thon3/kernel.json",
]


async def test_path_traversal_and_nul_are_refused(gateway: Gateway) -> None:
    secret = Path("/etc/passwd").read_bytes()[:20] if Path("/etc/passwd").exists() else b"root:x:0:0"
    for path in TRAVERSALS:
        status, body = await raw_get(gateway, path)
        assert 400 <= status < 500, (path, status)
        assert secret not in body, path
        assert b"root:" not in body, path
        assert b"Traceback" not in body, path
    # the raw client is itself sound: a legitimate file comes back
    status, body = await raw_get(gateway, "/kernelspecs/python3/logo-64x64.png")
    assert status == 200
    assert body == (PYTHON3_DIR / "logo-64x64.png").read_bytes()


async def test_resources_follow_base_url() -> None:
    async with serve(base_url="/prefix") as gw:
        spec = (await gw.client.get("/api/kernelspecs/python3")).json()
        logo = spec["resources"]["logo-64x64"]
        assert logo == "/prefix/kernelspecs/python3/logo-64x64.png"
        response = await gw.client.get(logo.removeprefix("/prefix"))
        assert response.status_code == 200
        assert response.content == (PYTHON3_DIR / "logo-64x64.png").read_bytes()
