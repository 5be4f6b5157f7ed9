"""Key rotation: new keys are picked up without a restart, and refetches are rate-limited."""

import threading
import time
from types import SimpleNamespace

import pytest

import api.identity.jwks
from tests.auth.support import (
    SigningKey,
    assert_rejected,
    better_auth_claims,
    create,
    ed25519_key,
    running,
    settings_for,
    sign,
    task_rows,
)
from tests.support.app import tasks_url
from tests.support.tokens import bearer
from tests.support.users import BETTER_AUTH_ALICE


@pytest.fixture
def clock(monkeypatch):
    """The JWKS cache's monotonic clock, moved forward by hand (time elsewhere is untouched)."""
    offset = SimpleNamespace(seconds=0.0)
    fake_time = SimpleNamespace(monotonic=lambda: time.monotonic() + offset.seconds)
    monkeypatch.setattr(api.identity.jwks, "time", fake_time)
    return offset


def test_a_token_signed_with_a_newly_published_key_is_accepted_without_a_restart(
    app_url, admin, provider, ed_key, next_key
):
    new_token = sign(next_key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        before_publication = create(client, BETTER_AUTH_ALICE, new_token, title="too early")
        provider.serve(ed_key, next_key)
        fetches = provider.fetches
        after_publication = create(client, BETTER_AUTH_ALICE, new_token, title="rotated")
        old_key_still = create(
            client, BETTER_AUTH_ALICE, sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE)), title="old key"
        )

    assert_rejected(before_publication, new_token, reason="unknown signing key")
    assert after_publication.status_code == 201, after_publication.text
    assert old_key_still.status_code == 201, old_key_still.text
    assert provider.fetches == fetches + 1  # the new kid cost exactly one refetch
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "rotated"), (BETTER_AUTH_ALICE, "old key")]


def test_a_key_withdrawn_from_the_jwks_stops_working_once_the_jwks_is_refetched(app_url, provider, ed_key, next_key):
    old_token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        assert client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(old_token)).status_code == 200
        provider.serve(next_key)  # the old key is retired
        rotated = client.get(
            tasks_url(BETTER_AUTH_ALICE), headers=bearer(sign(next_key, better_auth_claims(BETTER_AUTH_ALICE)))
        )
        retired = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(old_token))

    assert rotated.status_code == 200, rotated.text
    assert_rejected(retired, old_token, reason="unknown signing key")


def concurrently(client, tokens: list[str]) -> list[int]:
    """The statuses of GETs sent at once, one per token."""
    statuses: dict[int, int] = {}

    def attempt(n: int) -> None:
        statuses[n] = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(tokens[n])).status_code

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return [statuses[n] for n in range(len(tokens))]


def made_up(count: int, prefix: str) -> list[str]:
    return [sign(ed25519_key(f"{prefix}-{n}"), better_auth_claims(BETTER_AUTH_ALICE)) for n in range(count)]


def test_a_new_kid_right_after_a_fetch_waits_for_the_next_one_instead_of_failing(
    app_url, admin, provider, ed_key, next_key
):
    """A rotation moments after the last fetch: the request waits (at most the refresh interval)
    for the next allowed fetch, and succeeds; there is no window of 401s."""
    with running(settings_for(app_url, provider.url, min_refresh=1)) as client:
        provider.serve(ed_key, next_key)
        fetches = provider.fetches
        rotated = create(
            client, BETTER_AUTH_ALICE, sign(next_key, better_auth_claims(BETTER_AUTH_ALICE)), title="rotated"
        )

    assert rotated.status_code == 201, rotated.text
    assert provider.fetches == fetches + 1
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "rotated")]


def test_a_flood_of_made_up_kids_costs_one_fetch_per_refresh_interval(app_url, admin, provider):
    with running(settings_for(app_url, provider.url, min_refresh=1)) as client:
        fetches, started = provider.fetches, time.monotonic()
        statuses = concurrently(client, made_up(24, "flood")) + concurrently(client, made_up(24, "again"))
        elapsed = time.monotonic() - started

    assert statuses == [401] * 48
    assert 1 <= provider.fetches - fetches <= 1 + elapsed // 1
    assert task_rows(admin) == []


def test_concurrent_requests_with_unknown_kids_share_a_single_refetch(app_url, provider, ed_key, clock):
    provider.delay_seconds = 0.2  # a slow provider: the requests overlap while it answers
    with running(settings_for(app_url, provider.url, min_refresh=30)) as client:
        clock.seconds = 31
        fetches = provider.fetches
        statuses = concurrently(client, made_up(12, "slow"))

    assert statuses == [401] * 12
    assert provider.fetches - fetches == 1


def test_a_key_withdrawn_from_the_jwks_stops_on_schedule_though_no_token_names_a_new_kid(
    app_url, provider, ed_key, next_key, clock
):
    """Tokens of the withdrawn key keep coming, verified and cached; nothing names an unknown kid.
    The key set's max-age (Cache-Control: max-age=60 here) still ends the old key's life."""
    provider.cache_control = "public, max-age=60"
    old_token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    with running(settings_for(app_url, provider.url, min_refresh=1)) as client:
        assert (
            client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(old_token)).status_code == 200
        )  # verified, cached
        provider.serve(next_key)
        fetches = provider.fetches
        clock.seconds = 59
        before_max_age = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(old_token))
        fetches_before_max_age = provider.fetches
        clock.seconds = 61
        after_max_age = client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(old_token))

    assert before_max_age.status_code == 200
    assert fetches_before_max_age == fetches
    assert_rejected(after_max_age, old_token, reason="unknown signing key")
    assert provider.fetches == fetches + 1


@pytest.mark.parametrize(
    ("cache_control", "refetched_after", "not_before"),
    [
        (None, 300, 299),  # no max-age: JWT_JWKS_MAX_AGE_SECONDS
        ("max-age=120", 120, 119),
        ("max-age=86400, must-revalidate", 300, 299),  # a day is more than we trust a key set
        ("max-age=0", 10, 9),  # asking on every request would flood the provider
        ("no-store", 10, 9),
    ],
)
def test_the_providers_max_age_is_honoured_within_bounds(
    app_url, provider, ed_key, clock, cache_control, refetched_after, not_before
):
    provider.cache_control = cache_control
    token = sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))
    with running(settings_for(app_url, provider.url, min_refresh=1, max_age=300, token_cache=0)) as client:
        fetches = provider.fetches
        clock.seconds = not_before
        assert client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token)).status_code == 200
        early = provider.fetches
        clock.seconds = refetched_after + 1
        assert client.get(tasks_url(BETTER_AUTH_ALICE), headers=bearer(token)).status_code == 200

    assert early == fetches
    assert provider.fetches == fetches + 1


def test_a_key_replaced_under_the_same_kid_is_refetched_once_before_a_401(app_url, admin, provider, ed_key):
    replacement = SigningKey(ed_key.kid, "EdDSA", ed25519_key("unused").private)  # same kid, new key
    with running(settings_for(app_url, provider.url, min_refresh=1)) as client:
        provider.serve(replacement)
        fetches = provider.fetches
        renewed = create(
            client, BETTER_AUTH_ALICE, sign(replacement, better_auth_claims(BETTER_AUTH_ALICE)), title="renewed key"
        )
        after_renewal, started = provider.fetches, time.monotonic()
        forged = concurrently(
            client, [sign(ed_key, better_auth_claims(BETTER_AUTH_ALICE))] * 12
        )  # the old key: not the kid's
        elapsed = time.monotonic() - started

    assert renewed.status_code == 201, renewed.text
    assert after_renewal == fetches + 1
    assert forged == [401] * 12
    assert provider.fetches - after_renewal <= 1 + elapsed // 1, "at most one refetch per interval"
    assert task_rows(admin) == [(BETTER_AUTH_ALICE, "renewed key")]
