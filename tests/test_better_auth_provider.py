"""The real Better Auth identity provider (tests/identity_provider, better-auth 1.7.25): what its JWTs look like.

These tests prove the harness in tests/support/better_auth.py is the real thing (sign-up, sign-in,
then `GET /api/auth/token` with the session cookie, as `authClient.token()` does) and pin down the
JWT plugin's behaviour that the README documents:

- Keys: EdDSA over Ed25519 by default (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA` in the JWKS);
  the token header names the key with `kid`. `jwks.keyPairConfig.alg` picks another (ES256...).
- Claims: `iss` and `aud` are both the origin of Better Auth's `baseURL` (`aud` a single string,
  not a list); `sub` is the user id; `exp` is `iat` + 15 minutes.
- Payload: by default the whole user record: `id`, `name`, `email`, `emailVerified`, `createdAt`,
  `updatedAt` (and `image` when the user has one). `jwt.definePayload` returning `{}` leaves only
  `sub`, `iat`, `exp`, `iss` and `aud`.
- Where a frontend gets one: `GET /api/auth/token` answers `{"token": ...}`; `GET
  /api/auth/get-session` also sends one in the `set-auth-jwt` header. Sign-up and sign-in
  responses carry none (they set the session cookie only).
- The JWKS response (`GET /api/auth/jwks`) has no Cache-Control header. The first JWKS fetch on
  an empty key table creates the first key (so does the first token).
- Rotation (`jwks.rotationInterval`): a key gets `expiresAt` = its creation + the interval.
  Nothing rotates on a timer, and fetching the JWKS never rotates: the next token signed after
  `expiresAt` (a `/token` or `/get-session` call) finds no live key and creates a new one, with a
  new `kid`, which signs everything until it expires in turn. The old key stays in the JWKS until
  its own `expiresAt` + `jwks.gracePeriod` (default 30 days), counted from its expiry, not from the
  rotation; then the JWKS drops it (the row stays in the database). Without `rotationInterval`
  keys never expire. The JWKS lists keys oldest first.
"""

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.support.better_auth import PASSWORD, Account, BetterAuth, better_auth, unique_email

FIFTEEN_MINUTES = 15 * 60
REGISTERED = {"sub", "iat", "exp", "iss", "aud"}
USER_FIELDS = {"id", "name", "email", "emailVerified", "createdAt", "updatedAt"}


def new_user(idp: BetterAuth, name: str = "Ann Example") -> Account:
    """A signed-up user; sign-up signs the user in (Better Auth's autoSignIn)."""
    return idp.sign_up(unique_email(), PASSWORD, name)


def verify(idp: BetterAuth, token: str, algorithms: list[str] | None = None) -> dict[str, Any]:
    """What a resource server does: the key named by `kid` from the JWKS, then PyJWT's checks."""
    signing_key = jwt.PyJWKClient(idp.jwks_url, cache_jwk_set=False).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=algorithms or ["EdDSA"],
        issuer=idp.issuer,
        audience=idp.audience,
        options={"require": sorted(REGISTERED)},
    )


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def poll(condition: Callable[[], bool], *, deadline: float, interval: float = 0.05) -> float:
    """Wait for the condition; the wall-clock time it was first seen true."""
    while True:
        if condition():
            return time.time()
        if time.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(interval)


def test_a_token_from_sign_up_and_sign_in_is_eddsa_and_verifies_against_the_jwks(idp):
    email = unique_email()
    signed_up = idp.sign_up(email, PASSWORD, "Ann Example")
    signed_in = idp.sign_in(email, PASSWORD)
    token = idp.token(signed_in)

    assert signed_in.user_id == signed_up.user_id
    assert signed_in.session_token != signed_up.session_token  # each sign-in is a new session
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    keys = {key["kid"]: key for key in idp.jwks().json()["keys"]}
    assert header["kid"] in keys
    assert keys[header["kid"]] | {"x": "..."} == {
        "kid": header["kid"],
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "x": "...",
    }
    assert verify(idp, token)["sub"] == signed_in.user_id
    assert verify(idp, idp.token(signed_up))["sub"] == signed_up.user_id  # the sign-up's session works too


def test_iss_and_aud_are_the_base_url_origin_sub_the_user_id_and_tokens_last_15_minutes(idp):
    account = new_user(idp)
    before = int(time.time())
    claims = verify(idp, idp.token(account))
    after = int(time.time()) + 1

    assert idp.issuer == idp.audience == idp.base_url == idp.origin
    assert claims["iss"] == idp.origin
    assert claims["aud"] == idp.origin  # a string, not a list
    assert claims["sub"] == account.user_id
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == FIFTEEN_MINUTES


def test_the_default_payload_is_the_user_record(idp):
    account = new_user(idp, name="Zoë Example")
    claims = verify(idp, idp.token(account))

    assert set(claims) == REGISTERED | USER_FIELDS
    assert claims["name"] == "Zoë Example"
    assert claims["email"] == account.email
    assert claims["id"] == claims["sub"] == account.user_id
    assert claims["emailVerified"] is False


def test_a_slim_payload_carries_only_the_registered_claims():
    with better_auth(slim_payload=True) as slim:
        account = new_user(slim)
        claims = verify(slim, slim.token(account))

    assert set(claims) == REGISTERED
    assert claims["sub"] == account.user_id


def test_get_session_sends_a_jwt_in_set_auth_jwt_but_sign_in_does_not(idp):
    email = unique_email()
    idp.sign_up(email, PASSWORD, "Ann Example")
    sign_in = httpx.post(
        f"{idp.base_url}/api/auth/sign-in/email",
        json={"email": email, "password": PASSWORD},
        headers={"Origin": idp.origin},
    )
    assert sign_in.status_code == 200, sign_in.text
    assert "set-auth-jwt" not in sign_in.headers
    account = idp.sign_in(email, PASSWORD)

    claims = verify(idp, idp.session_jwt(account))

    assert claims["sub"] == account.user_id
    assert claims["exp"] - claims["iat"] == FIFTEEN_MINUTES


def test_the_token_endpoint_needs_a_session(idp):
    response = httpx.get(f"{idp.base_url}/api/auth/token", headers={"Origin": idp.origin})

    assert response.status_code == 401


def test_the_jwks_response_sends_no_cache_control(idp):
    response = idp.jwks()

    assert response.headers["content-type"].startswith("application/json")
    assert "cache-control" not in response.headers


def test_another_key_algorithm_is_one_setting_away():
    with better_auth(key_alg="ES256") as es256:
        account = new_user(es256)
        token = es256.token(account)
        (key,) = es256.jwks().json()["keys"]
        assert verify(es256, token, algorithms=["ES256"])["sub"] == account.user_id

    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert (key["kty"], key["crv"], key["alg"], key["kid"]) == ("EC", "P-256", "ES256", kid_of(token))


ROTATION = 2  # seconds: jwks.rotationInterval
GRACE = 2  # seconds: jwks.gracePeriod


def test_rotation_happens_on_the_first_sign_after_the_interval_and_the_old_key_stays_for_the_grace_period():
    with better_auth(rotation_interval_seconds=ROTATION, grace_period_seconds=GRACE) as idp:
        account = new_user(idp)
        started = time.time()
        (first_kid,) = idp.kids()  # the first JWKS fetch creates the first key
        created_by = time.time()
        first = idp.token(account)
        assert kid_of(first) == first_kid

        sleep_until(created_by + ROTATION + 0.05)  # the first key has expired
        assert idp.kids() == [first_kid]  # a JWKS fetch does not rotate
        second = idp.token(account)  # the first token signed after the expiry does
        second_kid = kid_of(second)
        assert second_kid != first_kid
        assert idp.kids() == [first_kid, second_kid]  # the old key is still published...
        assert verify(idp, first)["sub"] == verify(idp, second)["sub"] == account.user_id  # ...so both verify
        assert kid_of(idp.token(account)) == second_kid  # the new key signs until it expires in turn

        # ...until the old key's expiry + the grace period, counted from its expiry, not from the rotation.
        dropped = poll(lambda: first_kid not in idp.kids(), deadline=created_by + ROTATION + GRACE + 10)
        assert dropped >= started + ROTATION + GRACE
        assert idp.kids() == [second_kid]
        with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
            verify(idp, first)
        assert verify(idp, second)["sub"] == account.user_id
