"""Enterprise Gateway's multi-tenant options over the REST API, with real local kernels."""

from __future__ import annotations

import uuid

import pytest

from tests.support import serve

pytestmark = pytest.mark.timeout(180)

TOKEN = "tenant-token-0123456789"


def user(name: str) -> dict[str, object]:
    return {"env": {"KERNEL_USERNAME": name}}


async def test_each_user_may_run_at_most_max_kernels_per_user() -> None:
    async with serve(auth_token=TOKEN, max_kernels_per_user=1) as gw:
        first = await gw.client.post("/api/kernels", json=user("alice"))
        assert first.status_code == 201
        refused = await gw.client.post("/api/kernels", json=user("alice"))
        assert refused.status_code == 403
        assert refused.json() == {
            "reason": "Forbidden",
            "message": "A max kernels per user limit has been set to 1 and user 'alice' currently has "
            "1 active kernel.",
        }
        assert (await gw.client.post("/api/kernels", json=user("bob"))).status_code == 201
        # the place is free again once alice's kernel is gone
        assert (await gw.client.delete(f"/api/kernels/{first.json()['id']}")).status_code == 204
        assert (await gw.client.post("/api/kernels", json=user("alice"))).status_code == 201


async def test_unauthorized_and_authorized_users() -> None:
    async with serve(
        auth_token=TOKEN, list_kernels=True, unauthorized_users=["root"], authorized_users=["alice"]
    ) as gw:
        refused = await gw.client.post("/api/kernels", json=user("root"))
        assert refused.status_code == 403
        assert refused.json()["message"].startswith("User 'root' is not authorized to start kernel '")
        assert "Ensure KERNEL_USERNAME is set" in refused.json()["message"]
        stranger = await gw.client.post("/api/kernels", json=user("mallory"))
        assert stranger.status_code == 403
        assert "is not in the set of users authorized" in stranger.json()["message"]
        assert (await gw.client.post("/api/kernels", json=user("alice"))).status_code == 201
        assert len((await gw.client.get("/api/kernels")).json()) == 1  # refusals left nothing behind


async def test_kernel_ids_carry_the_replicas_prefix() -> None:
    async with serve(auth_token=TOKEN, kernel_id_prefix="c0") as gw:
        kernel_id = await gw.start_kernel()
        assert kernel_id.startswith("c0")
        assert uuid.UUID(kernel_id).version == 4
        session = await gw.client.post(
            "/api/sessions", json={"path": "a.ipynb", "type": "notebook", "kernel": {"id": kernel_id}}
        )
        assert session.status_code == 201, session.text
        assert session.json()["id"].startswith("c0")
        assert session.json()["kernel"]["id"] == kernel_id
