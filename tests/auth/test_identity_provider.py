"""Tokens from an identity provider (Better Auth's JWT plugin), verified with its JWKS."""

import time

import pytest

from tests.auth.support import (
    ALICE,
    BOB,
    FRONTEND,
    assert_rejected,
    auth,
    better_auth_claims,
    create,
    hs256,
    running,
    settings_for,
    sign,
    task_rows,
    tasks_url,
)
from tests.conftest import JWT_SECRET, bearer


@pytest.mark.parametrize("key_name", ["ed_key", "ec_key"], ids=["EdDSA", "ES256"])
def test_a_better_auth_token_creates_and_lists_the_users_own_tasks(request, app_url, admin, provider, key_name):
    key = request.getfixturevalue(key_name)
    provider.serve(key)
    token = sign(key, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url)) as client:
        created = create(client, ALICE, token, title="from the frontend")
        listed = client.get(tasks_url(ALICE), headers=auth(token))

    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == ALICE
    assert listed.status_code == 200, listed.text
    assert [(t["id"], t["user_id"]) for t in listed.json()] == [(created.json()["id"], ALICE)]
    assert task_rows(admin) == [(ALICE, "from the frontend")]
    assert provider.requests == [("GET", provider.path)]  # fetched once, at start-up


def test_the_jwks_is_fetched_at_start_up_before_any_request(app_url, provider):
    with running(settings_for(app_url, provider.url)):
        assert provider.fetches == 1


def test_the_subject_is_the_identity_not_the_user_object_inside_the_token(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(ALICE, id=BOB, email="bob@example.com"))

    with running(settings_for(app_url, provider.url)) as client:
        as_alice = create(client, ALICE, token)
        as_bob = create(client, BOB, token)

    assert as_alice.status_code == 201
    assert as_bob.status_code == 403
    assert task_rows(admin) == [(ALICE, "a task")]


def test_a_valid_token_for_one_user_on_another_users_path_gets_403(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url)) as client:
        writes = create(client, BOB, token)
        reads = client.get(tasks_url(BOB), headers=auth(token))

    assert (writes.status_code, reads.status_code) == (403, 403)
    assert task_rows(admin) == []


def test_a_jwks_only_deployment_refuses_hs256_tokens_whatever_their_secret(app_url, admin, provider):
    token = hs256(JWT_SECRET, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url, secret=None)) as client:
        response = create(client, ALICE, token)

    assert_rejected(response, token, reason="algorithm not allowed")
    assert task_rows(admin) == []


def test_with_both_a_secret_and_a_jwks_hs256_and_eddsa_tokens_both_work(app_url, admin, provider, ed_key):
    settings = settings_for(app_url, provider.url, secret=JWT_SECRET, issuer=None, audience=None)

    with running(settings) as client:
        by_secret = client.post(tasks_url(ALICE), json={"title": "hs256"}, headers=bearer(ALICE))
        by_provider = create(client, BOB, sign(ed_key, better_auth_claims(BOB)), title="eddsa")

    assert (by_secret.status_code, by_provider.status_code) == (201, 201), (by_secret.text, by_provider.text)
    assert task_rows(admin) == [(ALICE, "hs256"), (BOB, "eddsa")]


def test_with_an_issuer_configured_hs256_tokens_must_carry_it_too(app_url, admin, provider):
    settings = settings_for(app_url, provider.url, secret=JWT_SECRET)

    with running(settings) as client:
        with_iss = create(client, ALICE, hs256(JWT_SECRET, better_auth_claims(ALICE)))
        without_iss = client.post(tasks_url(ALICE), json={"title": "x"}, headers=bearer(ALICE))

    assert with_iss.status_code == 201, with_iss.text
    assert_rejected(without_iss, reason="missing claim iss")
    assert task_rows(admin) == [(ALICE, "a task")]


def test_an_explicit_allow_list_admits_each_listed_algorithm(app_url, admin, provider, ed_key, ec_key):
    provider.serve(ed_key, ec_key)
    settings = settings_for(app_url, provider.url, algorithms="EdDSA,ES256")

    with running(settings) as client:
        statuses = [
            create(client, ALICE, sign(key, better_auth_claims(ALICE)), title=key.alg).status_code
            for key in (ed_key, ec_key)
        ]

    assert statuses == [201, 201]
    assert task_rows(admin) == [(ALICE, "EdDSA"), (ALICE, "ES256")]


def test_an_audience_list_that_contains_ours_is_accepted(app_url, provider, ed_key):
    token = sign(ed_key, better_auth_claims(ALICE, aud=["https://other.example", FRONTEND]))

    with running(settings_for(app_url, provider.url)) as client:
        response = client.get(tasks_url(ALICE), headers=auth(token))

    assert response.status_code == 200, response.text


def test_issuer_and_audience_are_not_checked_when_not_configured(app_url, provider, ed_key):
    token = sign(ed_key, better_auth_claims(ALICE, iss="https://anyone.example", aud="anything"))

    with running(settings_for(app_url, provider.url, issuer=None, audience=None)) as client:
        response = client.get(tasks_url(ALICE), headers=auth(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("leeway", "expired_ago", "status"), [(30, 10, 200), (30, 60, 401), (5, 10, 401)])
def test_an_expired_token_is_accepted_only_within_the_configured_leeway(
    app_url, provider, ed_key, leeway, expired_ago, status
):
    token = sign(ed_key, better_auth_claims(ALICE, exp=int(time.time()) - expired_ago))

    with running(settings_for(app_url, provider.url, leeway=leeway)) as client:
        response = client.get(tasks_url(ALICE), headers=auth(token))

    assert response.status_code == status, response.text
    if status == 401:
        assert_rejected(response, token, reason="token expired")
