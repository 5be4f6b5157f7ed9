"""Tokens from an identity provider (Better Auth's JWT plugin), verified with its JWKS."""

import time

import pytest

from tests.auth.support import (
    FRONTEND,
    assert_rejected,
    better_auth_claims,
    create,
    running,
    settings_for,
    sign,
    sign_hmac,
    task_rows,
)
from tests.support.app import tasks_url
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.users import BETTER_AUTH_ALICE, BETTER_AUTH_BOB


@pytest.mark.parametrize("key_name", ["ed_key", "ec_key"], ids=["EdDSA", "ES256"])
def test_a_better_auth_token_creates_and_lists_the_users_own_tasks(request, app_url, admin, provider, key_name):
    key = request.getfixturevalue(key_name)
    provider.serve(key)
    token = sign(key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url)) as client:
        created = create(client, BETTER_AUTH_ALICE, token, title="from the frontend")
        listed = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token))

    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == BETTER_AUTH_ALICE
    assert listed.status_code == 200, listed.text
    assert [(t["id"], t["user_id"]) for t in listed.json()] == [(created.json()["id"], BETTER_AUTH_ALICE)]
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "from the frontend")]
    assert provider.requests == [("GET", provider.path)]  # fetched once, at start-up


def test_the_jwks_is_fetched_at_start_up_before_any_request(app_url, provider):
    with running(settings_for(app_url, provider.url)):
        assert provider.fetches == 1


def test_the_subject_is_the_identity_not_the_user_object_inside_the_token(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE, id=BETTER_AUTH_BOB, email="bob@example.com"))

    with running(settings_for(app_url, provider.url)) as client:
        as_alice = create(client, BETTER_AUTH_ALICE, token)
        as_bob = create(client, BETTER_AUTH_BOB, token)

    assert as_alice.status_code == 201
    assert as_bob.status_code == 403
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "a task")]


def test_a_valid_token_for_one_user_on_another_users_path_gets_403(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url)) as client:
        writes = create(client, BETTER_AUTH_BOB, token)
        reads = client.get(tasks_url(BETTER_AUTH_BOB), headers=bearer(token))

    assert (writes.status_code, reads.status_code) == (403, 403)
    assert task_rows(admin) == []


def test_a_jwks_only_deployment_refuses_hs256_tokens_whatever_their_secret(app_url, admin, provider):
    token = sign_hmac(JWT_SECRET.encode(), better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url, secret=None)) as client:
        response = create(client, BETTER_AUTH_ALICE, token)

    assert_rejected(response, token, reason="algorithm not allowed")
    assert task_rows(admin) == []


def test_with_both_a_secret_and_a_jwks_hs256_and_eddsa_tokens_both_work(app_url, admin, provider, ed_key):
    settings = settings_for(app_url, provider.url, secret=JWT_SECRET, issuer=None, audience=None)

    with running(settings) as client:
        by_secret = client.post(
            tasks_url(BETTER_AUTH_ALICE), json={"title": "hs256"}, headers=bearer(token_for(BETTER_AUTH_ALICE))
        )
        by_provider = create(client, BETTER_AUTH_BOB, sign(ed_key, better_auth_claims(BETTER_AUTH_BOB)), title="eddsa")

    assert (by_secret.status_code, by_provider.status_code) == (201, 201), (by_secret.text, by_provider.text)
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "hs256"), (BETTER_AUTH_BOB, "eddsa")]


def test_with_an_issuer_configured_hs256_tokens_must_carry_it_too(app_url, admin, provider):
    settings = settings_for(app_url, provider.url, secret=JWT_SECRET)

    with running(settings) as client:
        with_iss = create(
            client, BETTER_AUTH_ALICE, sign_hmac(JWT_SECRET.encode(), better_auth_claims(BETTER_AUTH_ALICE))
        )
        without_iss = client.post(
            tasks_url(BETTER_AUTH_ALICE), json={"title": "x"}, headers=bearer(token_for(BETTER_AUTH_ALICE))
        )

    assert with_iss.status_code == 201, with_iss.text
    assert_rejected(without_iss, reason="missing claim iss")
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "a task")]


def test_an_explicit_allow_list_admits_each_listed_algorithm(app_url, admin, provider, ed_key, ec_key):
    provider.serve(ed_key, ec_key)
    settings = settings_for(app_url, provider.url, algorithms="EdDSA,ES256")

    with running(settings) as client:
        statuses = [
            create(
                client, BETTER_AUTH_ALICE, sign(key, better_auth_claims(BETTER_AUTH_ALICE)), title=key.alg
            ).status_code
            for key in (ed_key, ec_key)
        ]

    assert statuses == [201, 201]
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "EdDSA"), (BETTER_AUTH_ALICE, "ES256")]


def test_an_audience_list_that_contains_ours_is_accepted(app_url, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE, aud=["https://other.example", FRONTEND]))

    with running(settings_for(app_url, provider.url)) as client:
        response = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token))

    assert response.status_code == 200, response.text


def test_issuer_and_audience_are_not_checked_when_not_configured(app_url, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE, iss="https://anyone.example", aud="anything"))

    with running(settings_for(app_url, provider.url, issuer=None, audience=None)) as client:
        response = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("leeway", "expired_ago", "status"), [(30, 10, 200), (30, 60, 401), (5, 10, 401)])
def test_an_expired_token_is_accepted_only_within_the_configured_leeway(
    app_url, provider, ed_key, leeway, expired_ago, status
):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE, exp=int(time.time()) - expired_ago))

    with running(settings_for(app_url, provider.url, leeway=leeway)) as client:
        response = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token))

    assert response.status_code == status, response.text
    if status == 401:
        assert_rejected(response, token, reason="token expired")
