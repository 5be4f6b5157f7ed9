"""Key rotation: new keys are picked up without a restart, and refetches are rate-limited."""

import threading
import time
from types import SimpleNamespace

import pytest

import api.jwks
from tests.auth.support import (
    ALICE,
    assert_rejected,
    auth,
    better_auth_claims,
    create,
    ed25519_key,
    running,
    settings_for,
    sign,
    task_rows,
    tasks_url,
)


@pytest.fixture
def clock(monkeypatch):
    """The JWKS cache's monotonic clock, moved forward by hand (time elsewhere is untouched)."""
    offset = SimpleNamespace(seconds=0.0)
    fake_time = SimpleNamespace(monotonic=lambda: time.monotonic() + offset.seconds)
    monkeypatch.setattr(api.jwks, "time", fake_time)
    return offset


def test_a_token_signed_with_a_newly_published_key_is_accepted_without_a_restart(
    app_url, admin, provider, ed_key, next_key
):
    new_token = sign(next_key, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        before_publication = create(client, ALICE, new_token, title="too early")
        provider.serve(ed_key, next_key)
        fetches = provider.fetches
        after_publication = create(client, ALICE, new_token, title="rotated")
        old_key_still = create(client, ALICE, sign(ed_key, better_auth_claims(ALICE)), title="old key")

    assert_rejected(before_publication, new_token, reason="unknown signing key")
    assert after_publication.status_code == 201, after_publication.text
    assert old_key_still.status_code == 201, old_key_still.text
    assert provider.fetches == fetches + 1  # the new kid cost exactly one refetch
    assert task_rows(admin) == [(ALICE, "rotated"), (ALICE, "old key")]


def test_a_key_withdrawn_from_the_jwks_stops_working_once_the_jwks_is_refetched(app_url, provider, ed_key, next_key):
    old_token = sign(ed_key, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=0)) as client:
        assert client.get(tasks_url(ALICE), headers=auth(old_token)).status_code == 200
        provider.serve(next_key)  # the old key is retired
        rotated = client.get(tasks_url(ALICE), headers=auth(sign(next_key, better_auth_claims(ALICE))))
        retired = client.get(tasks_url(ALICE), headers=auth(old_token))

    assert rotated.status_code == 200, rotated.text
    assert_rejected(retired, old_token, reason="unknown signing key")


def test_many_unknown_kids_cause_at_most_one_jwks_fetch_per_refresh_interval(app_url, admin, provider, ed_key):
    with running(settings_for(app_url, provider.url, min_refresh=60)) as client:
        fetches = provider.fetches
        responses = [
            create(client, ALICE, sign(ed25519_key(f"made-up-{n}"), better_auth_claims(ALICE))) for n in range(40)
        ]

    for response in responses:
        assert_rejected(response, reason="unknown signing key")
    assert fetches == 1
    assert provider.fetches - fetches <= 1
    assert task_rows(admin) == []


def test_within_the_refresh_interval_a_new_kid_waits_and_after_it_one_fetch_picks_it_up(
    app_url, admin, provider, ed_key, next_key, clock
):
    new_token = sign(next_key, better_auth_claims(ALICE))

    with running(settings_for(app_url, provider.url, min_refresh=60)) as client:
        provider.serve(ed_key, next_key)
        clock.seconds = 59
        within = [create(client, ALICE, new_token).status_code for _ in range(5)]
        fetches_within = provider.fetches
        clock.seconds = 61
        after = create(client, ALICE, new_token, title="after the interval")
        again = [create(client, ALICE, sign(ed25519_key(f"x{n}"), better_auth_claims(ALICE))) for n in range(5)]

    assert within == [401] * 5
    assert fetches_within == 1  # only the start-up fetch
    assert after.status_code == 201, after.text
    assert [r.status_code for r in again] == [401] * 5
    assert provider.fetches == 2  # one refetch after the interval, none for the made-up kids
    assert task_rows(admin) == [(ALICE, "after the interval")]


def test_concurrent_requests_with_unknown_kids_share_a_single_refetch(app_url, provider, ed_key, clock):
    provider.delay_seconds = 0.2  # a slow provider: the requests overlap while it answers
    statuses: list[int] = []
    with running(settings_for(app_url, provider.url, min_refresh=60)) as client:
        clock.seconds = 61
        fetches = provider.fetches

        def attempt(n: int) -> None:
            token = sign(ed25519_key(f"flood-{n}"), better_auth_claims(ALICE))
            statuses.append(client.get(tasks_url(ALICE), headers=auth(token)).status_code)

        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

    assert statuses == [401] * 12
    assert provider.fetches - fetches == 1
