"""Enterprise Gateway's multi-tenant rules and fastkg's kernel ids, as pure functions and settings."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.errors import Forbidden
from app.kernels.ids import new_id
from app.kernels.tenants import TenantPolicy, Tenants, kernel_username


def test_unauthorized_users_get_egs_message() -> None:
    tenants = Tenants(TenantPolicy(unauthorized_users=frozenset({"root"})))
    with pytest.raises(Forbidden) as refused:
        tenants.admit("root", "Python 3 (ipykernel)")
    assert refused.value.message == (
        "User 'root' is not authorized to start kernel 'Python 3 (ipykernel)'. "
        "Ensure KERNEL_USERNAME is set to an appropriate value and retry the request."
    )
    assert tenants.count("root") == 0


def test_only_authorized_users_may_start_when_the_set_is_not_empty() -> None:
    tenants = Tenants(TenantPolicy(authorized_users=frozenset({"alice"})))
    tenants.admit("alice", "Python 3")
    with pytest.raises(Forbidden) as refused:
        tenants.admit("bob", None)
    assert refused.value.message.startswith(
        "User 'bob' is not in the set of users authorized to start kernels. "
    )


def test_unauthorized_wins_over_authorized() -> None:
    tenants = Tenants(
        TenantPolicy(authorized_users=frozenset({"eve"}), unauthorized_users=frozenset({"eve"}))
    )
    with pytest.raises(Forbidden, match="is not authorized"):
        tenants.admit("eve", "k")


def test_the_per_user_limit_counts_each_user_and_frees_on_release() -> None:
    tenants = Tenants(TenantPolicy(max_kernels_per_user=2))
    tenants.admit("alice", "k")
    tenants.admit("alice", "k")
    tenants.admit("bob", "k")  # another user is not affected
    with pytest.raises(Forbidden) as refused:
        tenants.admit("alice", "k")
    assert refused.value.message == (
        "A max kernels per user limit has been set to 2 and user 'alice' currently has 2 active kernels."
    )
    tenants.release("alice")
    tenants.admit("alice", "k")
    assert tenants.count("alice") == 2


def test_egs_singular_wording_follows_the_limit() -> None:
    tenants = Tenants(TenantPolicy(max_kernels_per_user=1))
    tenants.admit("alice", "k")
    with pytest.raises(Forbidden, match=r"currently has 1 active kernel\.$"):
        tenants.admit("alice", "k")


def test_a_start_without_kernel_username_counts_as_the_gateways_user() -> None:
    assert kernel_username({"KERNEL_USERNAME": "alice"}) == "alice"
    assert kernel_username({"KERNEL_USERNAME": ""}) == kernel_username(None) != ""


@pytest.mark.parametrize("prefix", ["", "a", "0f", "deadbeef"])
def test_kernel_ids_are_uuids_with_the_replicas_prefix(prefix: str) -> None:
    ids = {new_id(prefix) for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert value.startswith(prefix)


def test_settings_accept_fastkg_and_eg_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EG_MAX_KERNELS_PER_USER", "3")
    monkeypatch.setenv("EG_AUTHORIZED_USERS", "alice, bob")
    monkeypatch.setenv("EG_UNAUTHORIZED_USERS", "root")
    settings = Settings()
    assert settings.max_kernels_per_user == 3
    assert settings.authorized_users == ["alice", "bob"]
    assert settings.unauthorized_users == ["root"]
    monkeypatch.setenv("FASTKG_MAX_KERNELS_PER_USER", "5")  # fastkg's name wins over EG's
    assert Settings().max_kernels_per_user == 5
    monkeypatch.setenv("FASTKG_MAX_KERNELS_PER_USER", "-1")  # EG's "no limit"
    assert Settings().max_kernels_per_user is None


def test_deadlines_and_prefix_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTKG_INTERRUPT_TIMEOUT", "3")
    monkeypatch.setenv("FASTKG_SHUTDOWN_TIMEOUT", "40")
    monkeypatch.setenv("FASTKG_KERNEL_POLL_INTERVAL", "2.5")
    monkeypatch.setenv("FASTKG_KERNEL_ID_PREFIX", "b")
    settings = Settings()
    assert (settings.interrupt_timeout, settings.shutdown_timeout) == (3.0, 40.0)
    assert settings.kernel_poll_interval == 2.5
    assert settings.kernel_id_prefix == "b"
    monkeypatch.setenv("FASTKG_KERNEL_ID_PREFIX", "xyz")  # not hex: refused, the gateway does not start
    with pytest.raises(ValidationError):
        Settings()
