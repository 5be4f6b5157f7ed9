"""Fixtures for the deployed-configuration suite: fresh databases (the identity provider, `idp`,
comes from tests/conftest.py)."""

from collections.abc import Iterator

import pytest

from tests.support.database import cloned_database


@pytest.fixture
def database(pg_template, login_role: str) -> Iterator[dict[str, str]]:
    """A fresh migrated database: {"app_url": as the Neon-style login role, "admin_url"}."""
    with cloned_database(pg_template, "taskapi_deployed") as urls:
        yield urls
