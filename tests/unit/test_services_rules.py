"""Pure rules of notebook services: names, prefixes and collisions, settings, versions and rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import Conflict, NotFound, Unprocessable
from app.services.spec import (
    Defaults,
    ServiceSpec,
    build_spec,
    check_name,
    default_prefix,
    normalise_prefix,
    overlaps,
    reserved_clash,
)
from app.services.versions import History, content_hash


@pytest.mark.parametrize("name", ["a", "0", "my-service", "x1-2-3", "a" * 63])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "A", "a_b", "a.b", "a/b", "a" * 64, "é", 3, None])
def test_bad_names(name: object) -> None:
    with pytest.raises(Unprocessable, match="Invalid service name"):
        check_name(name)


def test_default_prefix() -> None:
    assert default_prefix("greeter") == "/services/greeter"
    assert build_spec("greeter", {}, Defaults()).prefix == "/services/greeter"


@pytest.mark.parametrize(
    ("given", "normal"), [("/a", "/a"), ("a/b/", "/a/b"), ("/v1.2/x~y", "/v1.2/x~y"), (" /a ", "/a")]
)
def test_prefix_normalised(given: str, normal: str) -> None:
    assert normalise_prefix(given) == normal


@pytest.mark.parametrize("given", ["/", "", "/a//b", "/../x", "/a/./b", "/a b", "/a?x", "/%2e"])
def test_bad_prefixes(given: str) -> None:
    with pytest.raises(Unprocessable, match="Invalid prefix"):
        normalise_prefix(given)


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        ("/a", "/a", True),
        ("/a", "/a/b", True),
        ("/a/b", "/a", True),
        ("/a", "/ab", False),
        ("/services/x", "/services/y", False),
        ("", "/a", False),  # the root service (KG's single-notebook mode) sits under everything
    ],
)
def test_overlaps(a: str, b: str, clash: bool) -> None:
    assert overlaps(a, b) is clash


@pytest.mark.parametrize(
    ("prefix", "clash"),
    [
        ("/api", "/api"),
        ("/api/x", "/api"),
        ("/docs", "/docs"),
        ("/openapi.json", "/openapi.json"),
        # paths the token middleware lets through without the token: a service there would be open
        ("/livez", "/livez"),
        ("/admin", "/admin"),
        ("/metrics/x", "/metrics"),
        ("/apis", None),
    ],
)
def test_reserved_paths(prefix: str, clash: str | None) -> None:
    assert reserved_clash(prefix) == clash


def test_settings_validated(tmp_path: Path) -> None:
    spec = build_spec(
        "s",
        {"pool_min": "2", "pool_max": 3, "env": '{"A": "1", "B": 2}', "timeout": "5", "cwd": "data"},
        Defaults(),
        cwd_base=tmp_path,
    )
    assert (spec.pool_min, spec.pool_max, spec.timeout) == (2, 3, 5.0)
    assert spec.env == {"A": "1", "B": "2"}
    assert spec.cwd == str(tmp_path / "data")
    assert build_spec("s", {"pool_min": 6}, Defaults(pool_max=4)).pool_max == 6
    for fields, text in [
        ({"pool_min": 0}, "pool_min"),
        ({"pool_min": 2, "pool_max": 1}, "below pool_min"),
        ({"pool_max": 1000}, r"above the gateway's limit \(32, FASTKG_SERVICES_POOL_LIMIT\)"),
        ({"pool_min": 33}, "above the gateway's limit"),  # pool_max follows pool_min up
        ({"timeout": "-1"}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),  # what JSON's 1e400 reads as
        ({"timeout": "nan"}, "timeout"),
        ({"env": '{"A": null}'}, "env values"),
        ({"colour": "red"}, "Unknown service setting"),
        ({"pool_max": True}, "pool_max"),
        ({"cwd": "~no-such-user-of-fastkg/data"}, "no such user"),  # the fuzzer's 500 (RuntimeError)
        ({"env": '{"A=B": "1"}'}, "may not contain"),  # a kernel start that fails: was a 500
        ({"env": {"A": "1\u0000"}}, "may not contain"),
    ]:
        with pytest.raises(Unprocessable, match=text):
            build_spec("s", fields, Defaults())


def _spec() -> ServiceSpec:
    return ServiceSpec("s", "/services/s")


def test_history_keeps_the_last_n_and_the_active_one() -> None:
    history = History(keep=2)
    first = history.new(b"1", _spec(), None, "api")
    history.add(first, first.id)
    assert first.hash == content_hash(b"1")
    second = history.new(b"2", _spec(), None, "watcher")
    history.add(second, second.id)
    assert [v.id for v in history.versions] == [2, 1]
    assert history.previous(2).id == 1
    # rolled back to 1, then a third deploy: 2 is the oldest inactive one and goes
    third = history.new(b"3", _spec(), None, "api")
    history.add(third, active_id=1)
    assert [v.id for v in history.versions] == [3, 1]
    assert history.get(1).deployed_by == "api"
    with pytest.raises(NotFound):
        history.get(2)
    with pytest.raises(Conflict, match="no previous version"):
        history.previous(1)


def test_history_ids_continue_after_restore() -> None:
    history = History(keep=5)
    version = history.new(b"x", _spec(), "nb.ipynb", "startup")
    restored = History(5, [version], next_id=7)
    assert restored.new(b"y", _spec(), None, "api").id == 7
    assert History(5, [version]).new(b"y", _spec(), None, "api").id == version.id + 1
