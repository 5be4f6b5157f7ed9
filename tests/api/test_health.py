"""Liveness and readiness: no token needed."""

from tests.api.support import assert_problem


def test_healthz_is_200_without_a_token_or_even_a_database(offline_client):
    response = offline_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_without_a_token_when_the_database_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_a_503_problem_with_retry_after_when_the_database_does_not_answer(offline_client):
    response = offline_client.get("/readyz")

    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0
