"""Verified tokens are remembered briefly: never past `exp`, never across a change of keys."""

import time
from types import SimpleNamespace

import jwt
import pytest
from fastapi.testclient import TestClient

import api.identity.tokens
from api.main import create_app
from tests.support.app import make_settings
from tests.support.tokens import bearer, token_for
from tests.support.users import ALICE


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every signature verification the server performs, in order."""
    calls: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token, *args, **kwargs):
        calls.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(api.identity.tokens.jwt, "decode", counting_decode)
    return calls


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The cache's wall clock (it compares with `exp`), moved forward by hand."""
    offset = SimpleNamespace(seconds=0.0)
    monkeypatch.setattr(api.identity.tokens, "time", SimpleNamespace(time=lambda: time.time() + offset.seconds))
    return offset


def _list(client: TestClient, token: str) -> int:
    return client.get(f"/api/{ALICE}/tasks", headers=bearer(token)).status_code


def test_a_token_is_verified_once_then_remembered(app_url, decodes):
    token = token_for(ALICE, ttl_seconds=600)
    with TestClient(create_app(make_settings(app_url))) as client:
        assert [_list(client, token) for _ in range(5)] == [200] * 5
    assert decodes == [token]


def test_a_remembered_token_is_refused_once_it_expires(app_url):
    token = token_for(ALICE, ttl_seconds=2)
    with TestClient(create_app(make_settings(app_url, jwt_leeway_seconds=0))) as client:
        assert _list(client, token) == 200
        time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05)
        # Past `exp`, well inside the cache's own 30 seconds.
        expired = client.get(f"/api/{ALICE}/tasks", headers=bearer(token))
    assert expired.status_code == 401
    assert "token expired" in expired.headers["www-authenticate"]


def test_entries_live_no_longer_than_the_cache_lifetime(app_url, decodes, clock):
    token = token_for(ALICE, ttl_seconds=3600)
    with TestClient(create_app(make_settings(app_url, jwt_cache_seconds=5))) as client:
        assert _list(client, token) == 200
        assert _list(client, token) == 200
        clock.seconds = 6
        assert _list(client, token) == 200
    assert decodes == [token, token]  # verified again once the entry aged out


def test_zero_turns_the_cache_off(app_url, decodes):
    token = token_for(ALICE, ttl_seconds=600)
    with TestClient(create_app(make_settings(app_url, jwt_cache_seconds=0))) as client:
        assert [_list(client, token) for _ in range(3)] == [200] * 3
    assert decodes == [token] * 3


def test_a_refused_token_is_never_remembered(app_url, decodes):
    forged = token_for(ALICE, secret="another-secret-" * 4, ttl_seconds=600)
    with TestClient(create_app(make_settings(app_url))) as client:
        assert [_list(client, forged) for _ in range(3)] == [401] * 3
    assert decodes == [forged] * 3


def test_the_cache_is_bounded(app_url):
    cache = api.identity.tokens.VerifiedTokens(max_age_seconds=60, max_entries=3)
    for n in range(5):
        cache.remember(f"token-{n}", f"user-{n}", expires_at=time.time() + 600, generation=0)
    assert [cache.subject(f"token-{n}", generation=0) for n in range(5)] == [None, None, "user-2", "user-3", "user-4"]
    assert cache.subject("token-4", generation=1) is None  # the keys changed since
