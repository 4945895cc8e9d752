"""Jupyter Server's sessions API (KG 3.0.1 answers 500 to GET/PATCH; fastkg implements it)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.integration.test_kernels_rest import assert_error, assert_kernel_model, listed
from tests.support import Gateway

SESSION_FIELDS = {"id", "path", "name", "type", "kernel"}


def assert_session(model: dict[str, Any], *, path: str, name: str, type_: str) -> None:
    assert set(model) == SESSION_FIELDS
    uuid.UUID(model["id"])
    assert (model["path"], model["name"], model["type"]) == (path, name, type_)
    assert_kernel_model(model["kernel"])


async def test_session_lifecycle(gateway: Gateway) -> None:
    client = gateway.client
    assert (await client.get("/api/sessions")).json() == []

    created = await client.post(
        "/api/sessions",
        json={"path": "work/a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )
    assert created.status_code == 201, created.text
    session = created.json()
    assert_session(session, path="work/a.ipynb", name="a.ipynb", type_="notebook")
    session_id = session["id"]
    first_kernel = session["kernel"]["id"]
    assert created.headers["location"] == f"/api/sessions/{session_id}"
    assert await listed(gateway) == [first_kernel]

    # the session's kernel is real
    ws = await gateway.connect(first_kernel)
    reply, _ = await ws.execute("1 + 1")
    assert reply["status"] == "ok"
    await ws.close()

    listing = (await client.get("/api/sessions")).json()
    assert [s["id"] for s in listing] == [session_id]
    assert_session(listing[0], path="work/a.ipynb", name="a.ipynb", type_="notebook")

    one = await client.get(f"/api/sessions/{session_id}")
    assert one.status_code == 200
    assert one.json()["kernel"]["id"] == first_kernel

    # creating a session for the same path returns the existing one (Jupyter Server)
    again = await client.post("/api/sessions", json={"path": "work/a.ipynb", "type": "notebook"})
    assert again.status_code == 201
    assert again.json()["id"] == session_id
    assert await listed(gateway) == [first_kernel]

    # rename
    renamed = await client.patch(f"/api/sessions/{session_id}", json={"path": "work/b.ipynb", "name": "b"})
    assert renamed.status_code == 200, renamed.text
    assert_session(renamed.json(), path="work/b.ipynb", name="b", type_="notebook")
    assert renamed.json()["kernel"]["id"] == first_kernel

    # move to another existing kernel by id
    other_kernel = await gateway.start_kernel()
    moved = await client.patch(f"/api/sessions/{session_id}", json={"kernel": {"id": other_kernel}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["kernel"]["id"] == other_kernel
    assert (await client.get(f"/api/sessions/{session_id}")).json()["kernel"]["id"] == other_kernel

    # moving to an unknown kernel id is Jupyter Server's 400 and changes nothing
    unknown_kernel = str(uuid.uuid4())
    body = assert_error(
        await client.patch(f"/api/sessions/{session_id}", json={"kernel": {"id": unknown_kernel}}), 400
    )
    assert body["message"] == f"No such kernel: {unknown_kernel}"
    assert (await client.get(f"/api/sessions/{session_id}")).json()["kernel"]["id"] == other_kernel

    deleted = await client.delete(f"/api/sessions/{session_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await client.get(f"/api/sessions/{session_id}"), 404)
    assert (await client.get("/api/sessions")).json() == []
    assert other_kernel not in await listed(gateway)  # the session's kernel is gone
    assert_error(await client.get(f"/api/kernels/{other_kernel}"), 404)


async def test_session_on_existing_kernel_and_kernel_death(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    created = await gateway.client.post(
        "/api/sessions", json={"path": "c.py", "name": "c", "type": "file", "kernel": {"id": kernel_id}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["kernel"]["id"] == kernel_id
    assert await listed(gateway) == [kernel_id]  # no new kernel
    session_id = created.json()["id"]

    # a session whose kernel was shut down disappears, as in Jupyter Server
    assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
    assert_error(await gateway.client.get(f"/api/sessions/{session_id}"), 404)
    assert (await gateway.client.get("/api/sessions")).json() == []


async def test_unknown_and_malformed_sessions(gateway: Gateway) -> None:
    client = gateway.client
    unknown = str(uuid.uuid4())
    assert_error(await client.get(f"/api/sessions/{unknown}"), 404)
    assert_error(await client.patch(f"/api/sessions/{unknown}", json={"name": "x"}), 404)
    assert_error(await client.delete(f"/api/sessions/{unknown}"), 404)
    for kernel in ({"id": unknown}, {"name": "nope"}):
        body = {"path": "x", "type": "notebook", "kernel": kernel}
        assert_error(await client.post("/api/sessions", json=body), 404)

    headers = {"content-type": "application/json"}
    assert_error(await client.post("/api/sessions", content=b"{oops", headers=headers), 400)
    for body in ({"path": 5}, {"kernel": "python3"}, {"kernel": {"id": ["a"]}}, [1], "s"):
        response = await client.post("/api/sessions", content=json.dumps(body).encode(), headers=headers)
        assert_error(response, 400)
    assert_error(await client.patch(f"/api/sessions/{unknown}", content=b"{oops", headers=headers), 400)
    assert_error(await client.patch(f"/api/sessions/{unknown}", json={"name": ["x"]}), 400)
    assert (await client.get("/api/sessions")).json() == []
    assert await listed(gateway) == []
