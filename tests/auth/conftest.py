"""Fixtures for the identity-provider tests: keys and JWKS servers on loopback."""

from collections.abc import Iterator

import psycopg
import pytest

from tests.auth.support import JwksServer, SigningKey, ed25519_key, jwks_server, p256_key
from tests.support.database import cloned_database


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    """The provider's current key: Better Auth's default, EdDSA over Ed25519."""
    return ed25519_key("ba-ed25519-2025-01")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    """An ES256 (P-256) key, as Better Auth issues with keyPairConfig {alg: "ES256"}."""
    return p256_key("ba-p256-2025-01")


@pytest.fixture(scope="session")
def next_key() -> SigningKey:
    """The key the provider rotates to."""
    return ed25519_key("ba-ed25519-2025-02")


@pytest.fixture(scope="session")
def attacker_key() -> SigningKey:
    return ed25519_key("attacker-key")


@pytest.fixture
def provider(ed_key: SigningKey) -> Iterator[JwksServer]:
    """The identity provider's JWKS endpoint, publishing `ed_key`."""
    with jwks_server(ed_key) as server:
        yield server


@pytest.fixture
def attacker(attacker_key: SigningKey) -> Iterator[JwksServer]:
    """Another server on loopback, publishing the attacker's key; it must never be asked."""
    with jwks_server(attacker_key) as server:
        yield server


@pytest.fixture(scope="module")
def module_database(pg_template, login_role: str) -> Iterator[dict[str, str]]:
    """One migrated database for a whole module: {"app_url", "admin_url"}.

    For modules of many short requests that must write nothing: cloning a database per test
    would dominate their run time. Tests empty `tasks` themselves (see `module_admin`).
    """
    with cloned_database(pg_template, "taskapi_auth") as urls:
        yield urls


@pytest.fixture(scope="module")
def module_admin_connection(module_database: dict[str, str]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(module_database["admin_url"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def module_admin(module_admin_connection: psycopg.Connection) -> psycopg.Connection:
    """The module database as its superuser, `tasks` emptied before the test."""
    module_admin_connection.execute("truncate tasks cascade")  # and task_tags
    return module_admin_connection


@pytest.fixture(scope="module")
def module_provider(ed_key: SigningKey) -> Iterator[JwksServer]:
    """The identity provider, shared by a module: its request log spans every test in it."""
    with jwks_server(ed_key) as server:
        yield server
