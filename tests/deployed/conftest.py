"""Fixtures for the deployed-configuration suite: a real identity provider and fresh databases."""

from collections.abc import Iterator
from uuid import uuid4

import pytest

from tests.conftest import cloned_database
from tests.support.better_auth import BetterAuth, better_auth

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def idp() -> Iterator[BetterAuth]:
    """Better Auth with its JWT plugin and default keys (EdDSA over Ed25519), for a module."""
    with better_auth() as provider:
        yield provider


@pytest.fixture
def database(pg_template, login_role: str) -> Iterator[dict[str, str]]:
    """A fresh migrated database: {"app_url": as the Neon-style login role, "admin_url"}."""
    with cloned_database(pg_template, "taskapi_deployed") as urls:
        yield urls


def email() -> str:
    return f"{uuid4().hex[:12]}@example.com"
