"""Property-based fuzzing of the whole HTTP API: schemathesis over the gateway's own /openapi.json.

The product rule under test: bad input gets a clear error and nothing is lost. Every documented operation
(kernels, kernelspecs, sessions, notebook services and jobs, admin, probes, documents) gets generated
valid and invalid requests (examples, coverage and fuzzing phases, a fixed seed) on a real uvicorn server
on loopback: never a 5xx, every 4xx a JSON {reason, message}, every answer with the status, media type,
headers and body schema the document promises, invalid data refused and undocumented methods a 405.
Then bodies beyond the limits, and the proof that nothing was lost: the fuzzer's kernels are shut down
over the API, no kernel process or file descriptor is left over, a bystander's long-running execution on
its own websocket went on undisturbed, and a new kernel still starts and executes over a websocket.

The server runs in a thread of its own (its own event loop), since schemathesis sends its requests
synchronously; the tests of this module run in order and share it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from schemathesis import Case

from app.config import Settings
from app.main import create_app
from tests.processes import children, fd_count, kill_leftovers, wait_gone
from tests.support import Gateway, KernelSocket, Received, execute_content, free_port, serve, stdout_of

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"token {TOKEN}"}
MAX_KERNELS = 3  # the bystander's and at most two the fuzzer starts (then 403 Resource Limit, as in KG)
BODY_LIMIT = 64 * 1024  # every body limit, so that "oversized" costs little to send
EXAMPLES = 50  # per operation in the fuzzing phase; the coverage phase adds its boundary cases
FD_SLACK = 8  # the loop's own descriptors come and go (executor threads, resolver, keep-alive)
T = TypeVar("T")
DEPLOYS = ["deploy_service", "update_service", "admin_post_services"]
FORWARDED = [f"admin_{method}_service_path" for method in ("get", "post", "put", "delete")]
# A deploy can be well formed and still undeployable (no notebook at that source, an upload that is no
# notebook, no service of that name): the 4xx the services API documents. Valid data is otherwise never
# refused, but for a `..` segment in what the admin page forwards (never a way out of /api/services with
# the gateway's token), which the schema of a path parameter cannot say.
UNDEPLOYABLE = ["2xx", "404", "405", "409", "422"]

# Everything schemathesis does is fixed here (no schemathesis.toml is read): a fixed seed and
# derandomized generation, no example database (nothing is written to the repository), no stateful phase
# (it would chain ids into shutdowns and deploys; each operation is fuzzed on its own).
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261202,
        "max-stream-events": 1,  # the admin event stream: its first event, not its 15 seconds
        "request-timeout": 90,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                "include-operation-id": DEPLOYS,
                "checks": {"positive_data_acceptance": {"expected-statuses": UNDEPLOYABLE}},
                # the widest bodies (ten settings, two media types) answer fast: more examples
                "generation": {"max-examples": 4 * EXAMPLES},
            },
            {
                "include-operation-id": FORWARDED,
                "checks": {"positive_data_acceptance": {"expected-statuses": [*UNDEPLOYABLE, "400"]}},
            },
        ],
    }
)


@dataclass
class Bystander:
    """Another client: a websocket on its own kernel, running a cell that prints a tick every 0.2 s for
    the whole fuzz (busy, so even the admin API's shutdown of idle kernels passes it by)."""

    kernel_id: str
    socket: KernelSocket
    msg_id: str
    received: list[Received] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        while True:
            self.received.append(await self.socket.recv(limit=3600))


@dataclass
class FuzzedGateway:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    bystander: Bystander
    session: requests.Session
    children: set[int]  # before the fuzz: the bystander's kernel
    fds: int
    calls: int = 0

    def run(self, coroutine: Coroutine[Any, Any, T], limit: float = 120) -> T:
        """Run a coroutine on the server's event loop (the gateway's client lives there)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(limit)


async def _start_bystander(gateway: Gateway) -> Bystander:
    kernel_id = await gateway.start_kernel()
    socket = await gateway.connect(kernel_id)
    code = "import time\ni = 0\nwhile True:\n    print(i, flush=True)\n    i += 1\n    time.sleep(0.2)"
    bystander = Bystander(kernel_id, socket, await socket.send("execute_request", execute_content(code)))
    bystander.reader = asyncio.create_task(bystander.read())
    return bystander


def fuzz_settings(port: int, services_root: str) -> Settings:
    """Every API on: kernels, sessions, kernelspecs, notebook services and jobs, admin."""
    return Settings(
        port=port,
        auth_token=TOKEN,
        api="jupyter-websocket,services",
        admin="on",
        list_kernels=True,
        max_kernels=MAX_KERNELS,
        services_root=services_root,  # an empty directory: a JSON deploy never finds a notebook
        services_pool_max=1,
        max_rest_body=BODY_LIMIT,
        max_request_body=BODY_LIMIT,
        services_max_upload=BODY_LIMIT,
    )


# The tests are generated when the module is collected, before any server runs, from the document an app
# with these settings serves; the fixture checks that the running gateway's /openapi.json is that document.
# (schemathesis.pytest.from_fixture would load it from the server, but it does not run under pytest 9.2.)
DOCUMENT = create_app(fuzz_settings(0, "/nonexistent")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedGateway]:
    """The gateway, in a thread of its own, with a bystander already running on it."""
    settings = fuzz_settings(free_port(), str(tmp_path_factory.mktemp("services-root")))
    started: concurrent.futures.Future[tuple[Gateway, Bystander, asyncio.AbstractEventLoop]]
    started = concurrent.futures.Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            async with serve(settings) as gateway:
                bystander = await _start_bystander(gateway)
                started.set_result((gateway, bystander, asyncio.get_running_loop()))
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                if bystander.reader is not None:
                    bystander.reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await bystander.reader
                await bystander.socket.close()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="fuzzed-gateway")
    thread.start()
    pid = os.getpid()
    try:
        gateway, bystander, loop = started.result(180)
        with requests.Session() as session:
            served = session.get(f"{gateway.url}/openapi.json", headers=AUTH, timeout=30)
            assert served.json() == json.loads(json.dumps(DOCUMENT))  # the tests fuzz what is served
            yield FuzzedGateway(gateway, loop, bystander, session, children(pid), fd_count(pid))
    finally:
        before = children(pid)
        stop.set()
        thread.join(120)
        assert not thread.is_alive(), "the gateway did not stop"
        kill_leftovers(wait_gone(before, 30))


def assert_error_shape(case: Case, response: schemathesis.Response) -> None:
    """Every 4xx and 5xx is the project's JSON error, exactly {reason, message} (KG's shape)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":  # a HEAD answer has no body at all
        return
    media_type = next((v[0] for k, v in response.headers.items() if k.lower() == "content-type"), "")
    assert media_type.startswith("application/json"), (media_type, response.text)
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"reason", "message"}, body
    assert all(isinstance(value, str) and value for value in body.values()), body


@pytest.mark.timeout(300)
@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case, fuzzed: FuzzedGateway) -> None:
    fuzzed.session.cookies.clear()  # no admin cookie or csrf from an earlier case: each case alone
    response = case.call(base_url=fuzzed.gateway.url, session=fuzzed.session, headers=AUTH)
    fuzzed.calls += 1
    case.validate_response(response, headers=AUTH)
    assert_error_shape(case, response)


TOO_LARGE = f"Request body exceeds {BODY_LIMIT} bytes"
NO_SUCH_SERVICE = [("PUT", "/api/services/s"), ("POST", "/api/services/s/rollback")]
BODIES = [  # (method, path) of every route that reads a body, and the media type it reads
    ("POST", "/api/kernels", "application/json"),
    ("POST", "/api/sessions", "application/json"),
    ("PATCH", "/api/sessions/s", "application/json"),
    ("POST", "/api/services", "application/json"),
    ("PUT", "/api/services/s", "multipart/form-data; boundary=x"),
    ("POST", "/api/services/s/rollback", "application/json"),
    ("POST", "/admin/api/login", "application/json"),
    ("POST", "/admin/api/kernels/shutdown-idle", "application/json"),
    ("POST", "/admin/api/services", "application/json"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("method", "path", "media_type"), BODIES)
def test_bodies_beyond_the_limit_and_malformed(
    fuzzed: FuzzedGateway, method: str, path: str, media_type: str
) -> None:
    url = fuzzed.gateway.url + path
    headers = {**AUTH, "Content-Type": media_type}
    big = b"[" + b"0," * BODY_LIMIT + b"0]"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    declared = fuzzed.session.request(method, url, data=big, headers=headers, timeout=60)
    assert declared.status_code == 413, declared.text
    assert declared.json() == {"reason": "Request Entity Too Large", "message": TOO_LARGE}
    streamed = fuzzed.session.request(method, url, data=chunks(), headers=headers, timeout=60)
    if streamed.status_code != 413:  # refused before its body is read: a service that does not exist
        assert (method, path, streamed.status_code) in ((m, p, 404) for m, p in NO_SUCH_SERVICE)
    assert streamed.json()["message"] in (TOO_LARGE, "No such service: s")
    if media_type == "application/json":
        for broken in (b'{"name": ', b"\xff\xfe", b"{" * 5000 + b"}" * 5000):
            response = fuzzed.session.request(method, url, data=broken, headers=headers, timeout=60)
            expected = 404 if (method, path) in NO_SUCH_SERVICE else 400  # the name is looked at first
            assert response.status_code == expected, (broken[:20], response.text)
            assert set(response.json()) == {"reason", "message"}


@pytest.mark.timeout(300)
def test_nothing_was_lost(fuzzed: FuzzedGateway) -> None:
    """Run after the fuzz (this module's order): the fuzzer's kernels go over the API and take their
    processes and descriptors with them; the bystander never noticed; the gateway still works."""
    assert fuzzed.calls > 1000, "run the whole module: this test checks what the fuzz left behind"
    gateway, bystander, pid = fuzzed.gateway, fuzzed.bystander, os.getpid()

    async def shut_down_the_fuzzers_kernels() -> list[str]:
        listed = (await gateway.client.get("/api/kernels")).json()
        theirs = [k["id"] for k in listed if k["id"] != bystander.kernel_id]
        for kernel_id in theirs:
            assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        left = (await gateway.client.get("/api/kernels")).json()
        assert [k["id"] for k in left] == [bystander.kernel_id]
        assert (await gateway.client.get("/api/sessions")).json() == []  # their kernels are gone
        assert (await gateway.client.get("/api/services")).json() == []  # no random body deployed
        return theirs

    started = fuzzed.run(shut_down_the_fuzzers_kernels())
    assert 1 <= len(started) <= MAX_KERNELS - 1  # it did start kernels, and no more than allowed
    assert not wait_gone(children(pid) - fuzzed.children, 60), "kernel processes outlived their kernels"

    async def bystander_goes_on() -> None:
        # its cell printed all along and nothing restarted it; an interrupt ends it; its socket still works
        interrupted = await gateway.client.post(f"/api/kernels/{bystander.kernel_id}/interrupt")
        assert interrupted.status_code == 204
        async with asyncio.timeout(60):
            while not (replies := [m for m in bystander.received if m.msg_type == "execute_reply"]):
                await asyncio.sleep(0.1)
        assert bystander.reader is not None
        bystander.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bystander.reader
        mine = [m for m in bystander.received if m.parent_id == bystander.msg_id]
        ticks = [int(line) for line in stdout_of(mine).split()]
        assert len(ticks) > 10
        assert ticks == list(range(len(ticks)))  # none lost, none repeated
        states = {m.content["execution_state"] for m in bystander.received if m.msg_type == "status"}
        assert not states & {"restarting", "dead"}
        reply = replies[0]
        assert reply.parent_id == bystander.msg_id
        assert reply.content["ename"] == "KeyboardInterrupt"
        reply_content, outputs = await bystander.socket.execute("print('still here')")
        assert (reply_content["status"], stdout_of(outputs)) == ("ok", "still here\n")

    fuzzed.run(bystander_goes_on())

    async def a_new_kernel_works() -> None:
        kernel_id = await gateway.start_kernel()
        socket = await gateway.connect(kernel_id, v1=True)
        try:
            reply, outputs = await socket.execute("print(6 * 7)")
            assert (reply["status"], stdout_of(outputs)) == ("ok", "42\n")
        finally:
            await socket.close()
        assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204

    fuzzed.run(a_new_kernel_works())
    assert not wait_gone(children(pid) - fuzzed.children, 60)

    deadline = time.monotonic() + 60  # closed connections and sockets are released as the loop runs
    while (count := fd_count(pid)) > fuzzed.fds + FD_SLACK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count <= fuzzed.fds + FD_SLACK, (fuzzed.fds, count)
