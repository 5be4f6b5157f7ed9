"""Bearer-token authentication and the owner check.

Rejections are checked against `offline_client`, whose database does not exist: a 401 or 403
from it also shows that rejecting a caller never touches the database.
"""

import base64
import json
import time
import warnings

import pytest

from tests.api.support import ROUTES, assert_invalid, assert_problem, call, crafted_token, table
from tests.support.app import create_task, tasks_url
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.users import ALICE, BOB

OTHER_SECRET = "another-secret-that-is-also-long-enough-0123456789"


def _hs512_same_secret() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for HS512
        return crafted_token(algorithm="HS512")


def _payload_swapped_for_bob() -> str:
    header, _, signature = crafted_token().split(".")
    forged = {"sub": BOB, "exp": int(time.time()) + 3600}
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    return f"{header}.{payload}.{signature}"


INVALID_TOKENS = {
    "not-a-jwt": lambda: "not-a-jwt",
    "three-garbage-parts": lambda: "abc.def.ghi",
    "two-parts": lambda: ".".join(crafted_token().split(".")[:2]),
    "truncated-signature": lambda: crafted_token()[:-5],
    "payload-tampered": _payload_swapped_for_bob,
    "expired": lambda: crafted_token(exp_in=-3600),
    "expired-a-minute-ago": lambda: crafted_token(exp_in=-60),
    "signed-with-another-secret": lambda: crafted_token(key=OTHER_SECRET),
    "alg-none": lambda: crafted_token(key=None, algorithm="none"),
    "hs512-with-the-same-secret": _hs512_same_secret,
    "missing-exp": lambda: crafted_token(exp_in=None),
    "missing-sub": lambda: crafted_token(sub=None),
    "empty-sub": lambda: crafted_token(sub=""),
    "numeric-sub": lambda: crafted_token(sub=123),
    "null-sub": lambda: crafted_token(sub=None, claims={"sub": None}),
    "list-sub": lambda: crafted_token(sub=[ALICE]),
    "control-characters-in-sub": lambda: crafted_token(sub="ali\nce"),
    "nbf-in-the-future": lambda: crafted_token(claims={"nbf": int(time.time()) + 3600}),
    "iat-in-the-future": lambda: crafted_token(claims={"iat": int(time.time()) + 3600}),
    "non-numeric-exp": lambda: crafted_token(exp_in=None, claims={"exp": "tomorrow"}),
    "oversized": lambda: crafted_token(claims={"padding": "x" * 10_000}),
}


class TestMissingCredentials:
    @pytest.mark.parametrize(("method", "suffix", "operation", "_"), ROUTES, ids=[r[2] for r in ROUTES])
    def test_anonymous_gets_401_with_a_bearer_challenge_on_every_route(
        self, offline_client, method, suffix, operation, _
    ):
        response = call(offline_client, method, ALICE, suffix, 1)

        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer ")

    def test_anonymous_with_a_token_in_the_query_string_only_gets_401(self, offline_client):
        valid = token_for(ALICE)
        for name in ("access_token", "token", "authorization"):
            response = offline_client.get(tasks_url(ALICE), params={name: valid})

            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer ")
            assert valid not in response.text

    def test_anonymous_with_an_invalid_body_gets_401_not_422(self, offline_client):
        response = offline_client.post(tasks_url(ALICE), json={"title": "", "id": 1})

        assert_problem(response, 401)


class TestInvalidToken:
    @pytest.mark.parametrize("kind", INVALID_TOKENS)
    def test_an_invalid_token_gets_401_with_error_invalid_token(self, offline_client, kind):
        bad = INVALID_TOKENS[kind]()

        response = offline_client.get(tasks_url(ALICE), headers=bearer(bad))

        body = assert_problem(response, 401)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'error="invalid_token"' in challenge
        assert bad not in response.text and bad not in challenge
        assert "Traceback" not in body["detail"]

    def test_an_invalid_token_is_refused_on_every_route_and_nothing_changes(self, client, admin):
        task = create_task(client, ALICE)
        before = table(admin)

        for kind in ("expired", "alg-none", "signed-with-another-secret", "payload-tampered"):
            headers = bearer(INVALID_TOKENS[kind]())
            for method, suffix, _, _ in ROUTES:
                response = call(client, method, ALICE, suffix, task["id"], headers=headers)
                assert_problem(response, 401, case=(kind, method, suffix))
        assert table(admin) == before


class TestScheme:
    def test_the_scheme_word_is_case_insensitive(self, client):
        task = create_task(client, ALICE)

        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            response = client.get(tasks_url(ALICE), headers={"Authorization": f"{scheme} {crafted_token()}"})
            assert response.status_code == 200, scheme
            assert [t["id"] for t in response.json()] == [task["id"]]

    @pytest.mark.parametrize(
        "header",
        [
            "Basic YWxpY2U6cGFzc3dvcmQ=",
            "Token {token}",
            "JWT {token}",
            "{token}",
            "Bearer",
            "Bearer ",
            "Bearer{token}",
        ],
        ids=[
            "basic",
            "token-scheme",
            "jwt-scheme",
            "bare-token",
            "bearer-no-token",
            "bearer-space",
            "no-space",
        ],
    )
    def test_any_other_authorization_header_gets_401_with_a_bearer_challenge(self, offline_client, header):
        valid = token_for(ALICE)

        response = offline_client.get(tasks_url(ALICE), headers={"Authorization": header.format(token=valid)})

        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer ")
        assert valid not in response.text


class TestValidToken:
    def test_a_fresh_token_for_the_path_user_is_accepted(self, client):
        response = client.get(tasks_url(ALICE), headers=bearer(token_for(ALICE)))

        assert response.status_code == 200

    def test_nbf_and_iat_in_the_past_are_accepted(self, client):
        past = int(time.time()) - 600
        response = client.get(tasks_url(ALICE), headers=bearer(crafted_token(claims={"nbf": past, "iat": past})))

        assert response.status_code == 200

    def test_the_subject_is_the_identity_whatever_else_the_token_claims(self, client, admin):
        forged_claims = {"user_id": BOB, "role": "admin", "aud": "somewhere"}
        headers = bearer(crafted_token(claims=forged_claims))

        response = client.post(tasks_url(ALICE), json={"title": "mine"}, headers=headers)

        assert response.status_code == 201
        assert [(row["user_id"], row["title"]) for row in table(admin)] == [(ALICE, "mine")]

    def test_a_token_signed_with_the_configured_secret_by_any_library_is_accepted(self, client):
        # Built by hand, to pin the wire format rather than PyJWT's defaults.
        import hashlib
        import hmac

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps({"sub": ALICE, "exp": int(time.time()) + 60}).encode())
        signature = hmac.new(JWT_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

        response = client.get(tasks_url(ALICE), headers=bearer(f"{header}.{payload}.{b64(signature)}"))

        assert response.status_code == 200


class TestOwnerCheck:
    @pytest.mark.parametrize(("method", "suffix", "operation", "_"), ROUTES, ids=[r[2] for r in ROUTES])
    def test_a_valid_token_for_another_user_gets_403_on_every_route(self, offline_client, method, suffix, operation, _):
        response = call(offline_client, method, BOB, suffix, 1, headers=bearer(token_for(ALICE)))

        assert_problem(response, 403)

    def test_the_path_user_must_match_the_subject_exactly(self, offline_client):
        for path_user in ("Alice", "alice ", "alic", "alice2", "%61lice%00"):
            response = offline_client.get(tasks_url(path_user), headers=bearer(token_for(ALICE)))
            assert response.status_code == 403, path_user
            assert_problem(response, 403)

    def test_another_users_token_with_an_invalid_body_gets_403_not_422(self, offline_client):
        response = offline_client.post(tasks_url(BOB), json={"title": ""}, headers=bearer(token_for(ALICE)))

        assert_problem(response, 403)

    def test_the_owner_is_not_forbidden_and_a_bad_body_is_then_422(self, client):
        response = client.post(tasks_url(ALICE), json={"title": ""}, headers=bearer(token_for(ALICE)))

        assert_invalid(response, "title")
