from tests.conftest import bearer, create_task


def test_fixture_works(client):
    task = create_task(client, "alice", title="hello")
    r = client.get("/api/alice/tasks", headers=bearer("alice"))
    assert r.json()[0]["id"] == task["id"]
