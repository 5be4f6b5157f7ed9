"""Contradictory token settings are refused when the settings are built, not at the first request."""

import pytest
from pydantic import ValidationError

from api.config import Settings

DATABASE = "postgresql://nobody@/nowhere"
JWKS_URL = "http://127.0.0.1:1/api/auth/jwks"
SECRET_32 = "s" * 32


def build(**token_settings) -> Settings:
    values = {"jwt_secret": None, "jwt_jwks_url": None, "jwt_algorithms": None, **token_settings}
    return Settings(_env_file=None, database_url=DATABASE, **values)


@pytest.mark.parametrize(
    "algorithms", ["none", "None", "NONE", "EdDSA,none", "HS256, none"], ids=lambda a: a.replace(" ", "")
)
def test_the_none_algorithm_cannot_be_allowed(algorithms):
    with pytest.raises(ValidationError, match="unsupported algorithm"):
        build(jwt_secret=SECRET_32, jwt_jwks_url=JWKS_URL, jwt_algorithms=algorithms)


@pytest.mark.parametrize("algorithms", ["HS256", "HS512", "EdDSA,HS256"])
def test_allowing_an_hmac_algorithm_needs_a_secret(algorithms):
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        build(jwt_jwks_url=JWKS_URL, jwt_algorithms=algorithms)


@pytest.mark.parametrize("algorithms", ["EdDSA", "ES256", "RS256", "HS256,EdDSA"])
def test_allowing_a_public_key_algorithm_needs_a_jwks_url(algorithms):
    with pytest.raises(ValidationError, match="JWT_JWKS_URL"):
        build(jwt_secret=SECRET_32, jwt_algorithms=algorithms)


@pytest.mark.parametrize("secret", ["s" * 31, "short", "é" * 15 + "s"], ids=["31-bytes", "5-bytes", "31-utf8-bytes"])
def test_a_secret_shorter_than_32_bytes_is_refused(secret):
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        build(jwt_secret=secret)


def test_the_same_contradictions_are_refused_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", DATABASE)
    monkeypatch.setenv("JWT_JWKS_URL", JWKS_URL)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.setenv("JWT_ALGORITHMS", "HS256")

    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None)

    monkeypatch.setenv("JWT_ALGORITHMS", "none")
    with pytest.raises(ValidationError, match="unsupported algorithm"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    "token_settings",
    [
        {"jwt_secret": SECRET_32},
        {"jwt_secret": "é" * 16},  # 32 bytes in UTF-8
        {"jwt_jwks_url": JWKS_URL},
        {"jwt_jwks_url": JWKS_URL, "jwt_algorithms": "EdDSA"},
        {"jwt_jwks_url": JWKS_URL, "jwt_algorithms": "EdDSA, ES256"},
        {"jwt_secret": SECRET_32, "jwt_algorithms": "HS256"},
        {"jwt_secret": SECRET_32, "jwt_jwks_url": JWKS_URL, "jwt_algorithms": "HS256,EdDSA"},
        {"jwt_secret": SECRET_32, "jwt_jwks_url": JWKS_URL},
    ],
    ids=[
        "secret",
        "utf8-secret",
        "jwks",
        "jwks-eddsa",
        "jwks-two-algorithms",
        "secret-hs256",
        "both-explicit",
        "both-default",
    ],
)
def test_consistent_settings_are_accepted(token_settings):
    settings = build(**token_settings)

    expected = token_settings.get("jwt_algorithms")
    assert settings.allowed_algorithms == (None if expected is None else {a.strip() for a in expected.split(",")})
