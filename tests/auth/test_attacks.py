"""Forged, malformed and misdirected tokens: each a 401 (never a 500), and nothing is written.

The app runs in JWKS-only mode with the issuer and audience of a Better Auth frontend, the
provider publishing one Ed25519 key. Every attack is a POST that would create a row for the
token's claimed subject if the token were accepted.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.auth.support import (
    FRONTEND,
    OMIT,
    SigningKey,
    assert_not_echoed,
    assert_rejected,
    b64json,
    b64url,
    better_auth_claims,
    create,
    ed25519_key,
    running,
    settings_for,
    sign,
    sign_hmac,
    task_rows,
)
from tests.support.app import tasks_url
from tests.support.tokens import bearer
from tests.support.users import BETTER_AUTH_ALICE, BETTER_AUTH_BOB

OTHER_SECRET = "a-different-secret-of-at-least-32-bytes-0123456789"


@dataclass(frozen=True)
class Attack:
    forge: Callable[[SigningKey], str]  # given the provider's real key
    reason: str | set[str] | None  # the error_description the client is told (None: any)
    owner: str = BETTER_AUTH_ALICE  # the path user: the subject the forger is after


def _now() -> int:
    return int(time.time())


def _claims(**overrides) -> dict:
    return better_auth_claims(BETTER_AUTH_ALICE, **overrides)


def _raw_claims(**literals: str) -> bytes:
    """The claims as JSON, with some values replaced by raw JSON literals (1e400, Infinity, ...)."""
    claims = _claims(**{name: OMIT for name in literals})
    extra = "".join(f', "{name}": {literal}' for name, literal in literals.items())
    return (json.dumps(claims)[:-1] + extra + "}").encode()


def _unsigned(key: SigningKey, alg: str = "none") -> str:
    return f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': key.kid})}.{b64json(_claims())}."


def _payload_swapped(key: SigningKey) -> str:
    header, _, signature = sign(key, _claims()).split(".")
    return f"{header}.{b64json(better_auth_claims(BETTER_AUTH_BOB))}.{signature}"


def _signature_swapped(key: SigningKey) -> str:
    header, payload, _ = sign(key, _claims()).split(".")
    _, _, other = sign(key, better_auth_claims(BETTER_AUTH_BOB)).split(".")
    return f"{header}.{payload}.{other}"


ATTACKS: dict[str, Attack] = {
    # The signature.
    "alg-none": Attack(_unsigned, "algorithm not allowed"),
    "alg-None": Attack(lambda k: _unsigned(k, "None"), "algorithm not allowed"),
    "alg-NONE": Attack(lambda k: _unsigned(k, "NONE"), "algorithm not allowed"),
    "alg-empty": Attack(lambda k: _unsigned(k, ""), "algorithm not allowed"),
    "alg-missing": Attack(lambda k: sign(k, _claims(), header={"alg": OMIT}), "algorithm not allowed"),
    "alg-not-a-string": Attack(lambda k: sign(k, _claims(), header={"alg": ["EdDSA"]}), "algorithm not allowed"),
    "alg-unknown": Attack(lambda k: sign(k, _claims(), header={"alg": "Ed448"}), "algorithm not allowed"),
    "alg-not-the-keys": Attack(lambda k: sign(k, _claims(), header={"alg": "ES256"}), "algorithm not allowed"),
    "hs256-signed-with-the-public-key-pem": Attack(
        lambda k: sign_hmac(k.public_pem(), _claims(), header={"kid": k.kid}), "algorithm not allowed"
    ),
    "hs256-signed-with-the-raw-public-key": Attack(
        lambda k: sign_hmac(k.public_raw(), _claims(), header={"kid": k.kid}), "algorithm not allowed"
    ),
    "payload-tampered-after-signing": Attack(_payload_swapped, "bad signature", owner=BETTER_AUTH_BOB),
    "signature-from-another-token": Attack(_signature_swapped, "bad signature"),
    "signature-stripped": Attack(lambda k: sign(k, _claims()).rsplit(".", 1)[0] + ".", "bad signature"),
    "signed-by-another-key-under-the-real-kid": Attack(lambda k: sign(ed25519_key(k.kid), _claims()), "bad signature"),
    # The shape.
    "two-parts": Attack(lambda k: sign(k, _claims()).rsplit(".", 1)[0], "malformed token"),
    "four-parts": Attack(lambda k: sign(k, _claims()) + ".e30", "malformed token"),
    "garbage-base64": Attack(lambda k: "!!!.@@@.###", "malformed token"),
    "garbage-payload": Attack(lambda k: sign(k, _claims()).split(".")[0] + ".%%%%.abcd", "malformed token"),
    "header-not-json": Attack(lambda k: b64url(b"{not json") + ".e30.c2ln", "malformed token"),
    "header-a-json-array": Attack(lambda k: b64json(["EdDSA"]) + ".e30.c2ln", "malformed token"),
    "empty-parts": Attack(lambda k: "..", "malformed token"),
    "payload-a-signed-json-array": Attack(lambda k: sign(k, b"[1, 2, 3]"), "malformed token"),
    "payload-signed-but-not-json": Attack(lambda k: sign(k, b"\xff\xfe not json"), "malformed token"),
    "unencoded-payload-b64-false": Attack(lambda k: sign(k, _claims(), header={"b64": False}), "malformed token"),
    "kid-not-a-string": Attack(lambda k: sign(k, _claims(), header={"kid": 7}), "malformed token"),
    "deeply-nested-header": Attack(
        lambda k: b64url(('{"alg":' + "[" * 3000 + "]" * 3000 + "}").encode()) + ".e30.c2ln", "malformed token"
    ),
    # Time.
    "expired-beyond-leeway": Attack(lambda k: sign(k, _claims(exp=_now() - 60)), "token expired"),
    "nbf-in-the-future": Attack(lambda k: sign(k, _claims(nbf=_now() + 3600)), "token not yet valid"),
    "iat-in-the-future": Attack(lambda k: sign(k, _claims(iat=_now() + 3600)), "token not yet valid"),
    "exp-not-a-number": Attack(lambda k: sign(k, _claims(exp="tomorrow")), "malformed token"),
    "exp-infinite": Attack(lambda k: sign(k, _raw_claims(exp="1e400")), "malformed token"),
    "exp-beyond-the-integer-digit-limit": Attack(lambda k: sign(k, _raw_claims(exp="9" * 5000)), "malformed token"),
    "iat-infinite": Attack(lambda k: sign(k, _raw_claims(iat="Infinity")), None),
    "missing-exp": Attack(lambda k: sign(k, _claims(exp=OMIT)), "missing claim exp"),
    # PyJWT reads these with int(), so it lets them pass; RFC 7519 wants a JSON number.
    "exp-a-string-of-digits": Attack(lambda k: sign(k, _claims(exp=str(_now() + 900))), "invalid exp claim"),
    "nbf-a-string-of-digits": Attack(lambda k: sign(k, _claims(nbf=str(_now() - 5))), "invalid nbf claim"),
    "iat-a-string-of-digits": Attack(lambda k: sign(k, _claims(iat=str(_now()))), "invalid iat claim"),
    "exp-a-boolean": Attack(lambda k: sign(k, _claims(exp=True)), {"token expired", "invalid exp claim"}),
    # The subject.
    "missing-sub": Attack(lambda k: sign(k, _claims(sub=OMIT)), "missing claim sub"),
    "numeric-sub": Attack(lambda k: sign(k, _claims(sub=123)), "invalid subject", owner="123"),
    "empty-sub": Attack(lambda k: sign(k, _claims(sub="")), "invalid subject"),
    "null-sub": Attack(lambda k: sign(k, _claims(sub=None)), {"missing claim sub", "invalid subject"}),
    "list-sub": Attack(lambda k: sign(k, _claims(sub=[BETTER_AUTH_ALICE])), "invalid subject"),
    "control-character-sub": Attack(lambda k: sign(k, _claims(sub=BETTER_AUTH_ALICE + "\n")), "invalid subject"),
    "overlong-sub": Attack(lambda k: sign(k, _claims(sub="a" * 256)), "invalid subject", owner="a" * 255),
    # Issuer and audience.
    "missing-iss": Attack(lambda k: sign(k, _claims(iss=OMIT)), "missing claim iss"),
    "missing-aud": Attack(lambda k: sign(k, _claims(aud=OMIT)), "missing claim aud"),
    "wrong-iss": Attack(lambda k: sign(k, _claims(iss="https://evil.example")), "wrong issuer"),
    "superstring-iss-host": Attack(lambda k: sign(k, _claims(iss=FRONTEND + ".evil.com")), "wrong issuer"),
    "superstring-iss-path": Attack(lambda k: sign(k, _claims(iss=FRONTEND + "/x")), "wrong issuer"),
    "superstring-iss-slash": Attack(lambda k: sign(k, _claims(iss=FRONTEND + "/")), "wrong issuer"),
    "prefix-iss": Attack(lambda k: sign(k, _claims(iss=FRONTEND[:-1])), "wrong issuer"),
    "substring-iss": Attack(lambda k: sign(k, _claims(iss="localhost")), "wrong issuer"),
    "empty-iss": Attack(lambda k: sign(k, _claims(iss="")), "wrong issuer"),
    "iss-as-a-list": Attack(lambda k: sign(k, _claims(iss=[FRONTEND])), "wrong issuer"),
    "wrong-aud": Attack(lambda k: sign(k, _claims(aud="https://evil.example")), "wrong audience"),
    "superstring-aud": Attack(lambda k: sign(k, _claims(aud=FRONTEND + ".evil.com")), "wrong audience"),
    "prefix-aud": Attack(lambda k: sign(k, _claims(aud=FRONTEND[:-1])), "wrong audience"),
    "aud-list-without-ours": Attack(lambda k: sign(k, _claims(aud=["https://evil.example"])), "wrong audience"),
    # Headers we do not implement.
    "unknown-crit-header": Attack(
        lambda k: sign(k, _claims(), header={"crit": ["exp-ext"], "exp-ext": 1}),
        {"unsupported critical header", "malformed token"},  # PyJWT itself may refuse it first
    ),
    "oversized": Attack(lambda k: sign(k, _claims(padding="x" * 20_000)), "token too long"),
}


@pytest.fixture(scope="module")
def app(module_database, module_provider):
    """One app for the module: JWKS-only, the issuer and audience of a Better Auth frontend."""
    with running(settings_for(module_database["app_url"], module_provider.url)) as client:
        yield client


@pytest.fixture
def app_url(module_database):
    return module_database["app_url"]


@pytest.fixture
def admin(module_admin):
    return module_admin


def test_the_unaltered_token_the_attacks_start_from_is_accepted(app, admin, ed_key):
    response = create(app, BETTER_AUTH_ALICE, sign(ed_key, _claims()))

    assert response.status_code == 201, response.text
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "a task")]


@pytest.mark.parametrize("name", ATTACKS)
def test_a_forged_or_malformed_token_gets_401_and_writes_nothing(app, admin, module_provider, ed_key, name):
    attack = ATTACKS[name]
    token = attack.forge(ed_key)

    response = create(app, attack.owner, token)

    assert_rejected(response, token, reason=attack.reason, case=name)
    assert task_rows(admin) == []
    assert set(module_provider.requests) == {("GET", module_provider.path)}  # nothing but the JWKS


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "' or 1=1 --", "/api/auth/jwks?x=1", "%2e%2e/", "", "x" * 2000],
    ids=["path-traversal", "sql", "jwks-path-with-query", "encoded-traversal", "empty", "long"],
)
def test_a_kid_with_path_or_sql_characters_is_only_a_lookup_key(app, admin, module_provider, ed_key, kid):
    token = sign(ed_key, _claims(), header={"kid": kid})

    response = create(app, BETTER_AUTH_ALICE, token)

    assert_rejected(response, token, reason="unknown signing key")
    assert task_rows(admin) == []
    assert set(module_provider.requests) == {("GET", module_provider.path)}


@pytest.mark.parametrize("where", ["jku", "x5u", "jwk"])
@pytest.mark.parametrize("kid", ["attacker-key", "ba-ed25519-2025-01"], ids=["attacker-kid", "real-kid"])
def test_keys_or_key_urls_named_in_the_token_are_never_used(
    app, admin, module_provider, attacker, attacker_key, ed_key, where, kid
):
    assert kid in (attacker_key.kid, ed_key.kid)
    pointer = attacker_key.jwk() if where == "jwk" else attacker.url
    token = sign(attacker_key, _claims(), header={"kid": kid, where: pointer})

    response = create(app, BETTER_AUTH_ALICE, token)

    expected = "bad signature" if kid == ed_key.kid else "unknown signing key"
    assert_rejected(response, token, reason=expected)
    assert attacker.requests == []
    assert task_rows(admin) == []
    assert set(module_provider.requests) == {("GET", module_provider.path)}


def test_a_symmetric_key_published_in_the_jwks_is_never_used_as_a_secret(app_url, admin, provider, ed_key):
    secret = b"a-shared-secret-published-by-mistake-0123456789"
    provider.serve(ed_key, {"kty": "oct", "k": b64url(secret), "kid": "sym", "alg": "HS256", "use": "sig"})
    token = sign_hmac(secret, _claims(), header={"kid": "sym"})

    with running(settings_for(app_url, provider.url, algorithms=None)) as client:
        response = create(client, BETTER_AUTH_ALICE, token)

    assert_rejected(response, token)
    assert task_rows(admin) == []


@pytest.mark.parametrize("material", ["pem", "raw"])
@pytest.mark.parametrize("algorithms", [None, "HS256,EdDSA"], ids=["default-algorithms", "explicit-algorithms"])
def test_with_a_secret_too_hs256_signed_with_the_public_key_is_a_bad_signature(
    app_url, admin, provider, ed_key, material, algorithms
):
    key_bytes = ed_key.public_pem() if material == "pem" else ed_key.public_raw()
    token = sign_hmac(key_bytes, _claims(), header={"kid": ed_key.kid})
    settings = settings_for(app_url, provider.url, secret=OTHER_SECRET, algorithms=algorithms)

    with running(settings) as client:
        confused = create(client, BETTER_AUTH_ALICE, token)
        genuine = create(client, BETTER_AUTH_ALICE, sign_hmac(OTHER_SECRET.encode(), _claims()), title="genuine")

    assert_rejected(confused, token, reason="bad signature")
    assert genuine.status_code == 201, genuine.text  # the secret itself does work
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "genuine")]


def test_an_algorithm_left_out_of_jwt_algorithms_is_refused_even_with_a_published_key(
    app_url, admin, provider, ed_key, ec_key
):
    provider.serve(ed_key, ec_key)
    es256 = sign(ec_key, _claims())

    with running(settings_for(app_url, provider.url, algorithms="EdDSA")) as client:
        refused = create(client, BETTER_AUTH_ALICE, es256)
        allowed = create(client, BETTER_AUTH_ALICE, sign(ed_key, _claims()), title="eddsa")

    assert_rejected(refused, es256, reason="algorithm not allowed")
    assert allowed.status_code == 201, allowed.text
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "eddsa")]


def test_an_oversized_authorization_header_gets_401_or_431(app, admin, ed_key):
    token = sign(ed_key, _claims(padding="x" * 20_000))
    assert len(token) > 20_000

    response = create(app, BETTER_AUTH_ALICE, token)

    assert response.status_code in (401, 431), response.text
    assert_not_echoed(response, token)
    assert task_rows(admin) == []


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer  ", "Basic {token}", "Token {token}", "JWT {token}", "{token}", "Bearer{token}"],
    ids=["bearer-alone", "bearer-space", "bearer-spaces", "basic", "token", "jwt", "bare", "no-space"],
)
def test_a_valid_token_outside_a_bearer_authorization_header_gets_401(app, admin, ed_key, header):
    token = sign(ed_key, _claims())

    response = app.post(
        tasks_url(BETTER_AUTH_ALICE), json={"title": "x"}, headers={"Authorization": header.format(token=token)}
    )

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert_not_echoed(response, token)
    assert task_rows(admin) == []


@pytest.mark.parametrize("parameter", ["access_token", "token", "jwt"])
def test_a_valid_token_only_in_the_query_string_gets_401(app, admin, ed_key, parameter):
    token = sign(ed_key, _claims())

    response = app.post(tasks_url(BETTER_AUTH_ALICE), params={parameter: token}, json={"title": "x"})

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert_not_echoed(response, token)
    assert task_rows(admin) == []


def test_the_challenge_tells_the_reason_in_a_few_words_and_never_the_token(app, ed_key):
    expired = sign(ed_key, _claims(exp=_now() - 3600))
    tampered = _payload_swapped(ed_key)

    for token, owner, reason in (
        (expired, BETTER_AUTH_ALICE, "token expired"),
        (tampered, BETTER_AUTH_BOB, "bad signature"),
    ):
        response = app.get(tasks_url(owner), headers=bearer(token))
        challenge = response.headers["www-authenticate"]
        assert challenge == f'Bearer realm="taskapi", error="invalid_token", error_description="{reason}"'
        assert_not_echoed(response, token)


@pytest.mark.parametrize(
    "value", [b"Bearer \xe9\xe9\xe9", b"Bearer \xff.\xfe.\xfd", b"Bearer a\tb", b"Bearer " + b"." * 5000]
)
def test_odd_bytes_in_the_authorization_header_get_401_not_500(app, admin, value):
    response = app.post(tasks_url(BETTER_AUTH_ALICE), json={"title": "x"}, headers={"Authorization": value})

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert task_rows(admin) == []
