"""The identity provider down: cached keys keep working, anything else is a 503, never a 401."""

import json
import time

import pytest

from tests.auth.support import assert_not_echoed, better_auth_claims, create, running, settings_for, sign, task_rows
from tests.support.app import PROBLEM_JSON, tasks_url
from tests.support.tokens import JWT_SECRET, bearer, token_for
from tests.support.users import BETTER_AUTH_ALICE


def assert_unavailable(response, token: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert int(response.headers["retry-after"]) >= 1
    assert "www-authenticate" not in response.headers  # not the client's fault: no challenge
    assert_not_echoed(response, token)


def test_with_keys_cached_a_known_kid_keeps_working_while_the_provider_is_down(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        provider.stop()
        created = create(client, BETTER_AUTH_ALICE, token, title="during the outage")
        listed = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token))

    assert created.status_code == 201, created.text
    assert listed.status_code == 200 and len(listed.json()) == 1
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "during the outage")]


def test_an_uncached_kid_while_the_provider_is_down_gets_503_with_retry_after(app_url, admin, provider, next_key):
    token = sign(next_key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        provider.stop()
        response = create(client, BETTER_AUTH_ALICE, token)

    assert_unavailable(response, token)
    assert task_rows(admin) == []


def test_an_app_started_while_the_provider_is_down_answers_503_until_it_is_back(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    provider.stop()

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        assert client.get("/healthz").status_code == 200  # start-up did not fail
        while_down = [
            create(client, BETTER_AUTH_ALICE, token),
            client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token)),
        ]
        provider.start()
        once_back = create(client, BETTER_AUTH_ALICE, token, title="provider is back")

    for response in while_down:
        assert_unavailable(response, token)
    assert once_back.status_code == 201, once_back.text
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "provider is back")]


def test_hs256_tokens_keep_working_while_the_provider_is_down(app_url, admin, provider):
    provider.stop()
    settings = settings_for(app_url, provider.url, secret=JWT_SECRET, issuer=None, audience=None)

    with running(settings) as client:
        response = client.post(
            tasks_url(BETTER_AUTH_ALICE), json={"title": "by secret"}, headers=bearer(token_for(BETTER_AUTH_ALICE))
        )

    assert response.status_code == 201, response.text
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "by secret")]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"error":"internal"}'),
        (200, b"<html>maintenance</html>"),
        (200, b'{"keys": "not a list"}'),
        (200, b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "sym"}]}'),
        (200, "oversized"),
    ],
    ids=["http-500", "not-json", "not-a-jwks", "no-usable-key", "oversized"],
)
def test_a_provider_answering_nonsense_counts_as_down(app_url, admin, provider, ed_key, status, body):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    if body == "oversized":  # a usable key, but in a document over the 64 KiB cap
        body = json.dumps({"keys": [ed_key.jwk()], "padding": "x" * 70_000}).encode()
    provider.status, provider.raw_body = status, body

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        broken = create(client, BETTER_AUTH_ALICE, token)
        provider.status, provider.raw_body = 200, None
        repaired = create(client, BETTER_AUTH_ALICE, token, title="repaired")

    assert_unavailable(broken, token)
    assert repaired.status_code == 201, repaired.text
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "repaired")]


def test_a_provider_that_hangs_gets_503_within_the_configured_timeout(app_url, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    provider.delay_seconds = 3

    with running(settings_for(app_url, provider.url, min_refresh=0, timeout=0.3)) as client:
        started = time.monotonic()
        response = create(client, BETTER_AUTH_ALICE, token)
        elapsed = time.monotonic() - started

    assert_unavailable(response, token)
    assert elapsed < 2.0


def test_a_jwks_answer_redirecting_elsewhere_is_not_followed(app_url, admin, provider, attacker, attacker_key):
    token = sign(attacker_key, better_auth_claims(BETTER_AUTH_ALICE))
    provider.status, provider.redirect_to = 302, attacker.url

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        response = create(client, BETTER_AUTH_ALICE, token)

    assert_unavailable(response, token)
    assert attacker.requests == []
    assert task_rows(admin) == []


def test_retry_after_names_the_time_until_the_keys_may_be_fetched_again(app_url, admin, provider, ed_key):
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    provider.stop()

    with running(settings_for(app_url, provider.url, min_refresh=30)) as client:
        response = create(client, BETTER_AUTH_ALICE, token)  # the fetch at start-up failed; the next is 30 s away

    assert_unavailable(response, token)
    assert 25 <= int(response.headers["retry-after"]) <= 30
    assert task_rows(admin) == []
