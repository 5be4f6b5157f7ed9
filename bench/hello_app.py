"""The ceiling: a hello-world FastAPI endpoint, served the same way as the project.

No database, no token check: the same routes answer a fixed task, so the load generator's
requests are the same for all three apps. What the project costs above this is its own work.
"""

from fastapi import FastAPI

TASK = {
    "id": 1,
    "user_id": "u1",
    "title": "task 1 of u1",
    "description": None,
    "completed": False,
    "created_at": "2026-01-01T00:00:00.000000Z",
    "updated_at": "2026-01-01T00:00:00.000000Z",
    "version": 1,
}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/api/{user_id}/tasks")
    async def list_tasks(user_id: str) -> list[dict[str, object]]:
        return [TASK] * 20

    @app.get("/api/{user_id}/tasks/{task_id}")
    async def get_task(user_id: str, task_id: int) -> dict[str, object]:
        return TASK

    return app
