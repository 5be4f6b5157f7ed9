"""Tokens the API accepts, and the header that carries one.

Tokens an identity provider signs (EdDSA, ES256) and tokens crafted to be refused live with the
tests that need them (tests/auth/support.py, tests/api/support.py).
"""

from api.identity.tokens import mint_token

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def token_for(user_id: str, *, secret: str = JWT_SECRET, ttl_seconds: int = 3600) -> str:
    """A signed HS256 token for `user_id` (sub, iat, exp), as `taskapi token` mints one."""
    return mint_token(secret, user_id, ttl_seconds=ttl_seconds)


def bearer(token: str) -> dict[str, str]:
    """Headers carrying `token` as a bearer token."""
    return {"Authorization": f"Bearer {token}"}
