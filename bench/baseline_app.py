"""The naive baseline: plain FastAPI + SQLModel, ownership enforced by Python-side WHERE clauses.

No role switch, no set_config, no row-level security: it logs in as the superuser (which
bypasses RLS, FORCE included) and filters every query with `Task.user_id == sub`, written in
the style of the SQLModel tutorial (session.get-style lookups, add/commit/refresh). It
verifies the same HS256 tokens and serves the same six routes.

    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:15432/taskapi \
    BENCH_JWT_SECRET=... uvicorn --factory bench.baseline_app:create_app
"""

import os
from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


def _now() -> datetime:
    return datetime.now(UTC)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    id: int | None = Field(default=None, primary_key=True)
    user_id: str
    title: str
    description: str | None = None
    completed: bool = False
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)


class TaskIn(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    completed: bool = False


class TaskUpdate(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    completed: bool | None = None


class Completion(SQLModel):
    completed: bool


class TaskOut(SQLModel):
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


def create_app() -> FastAPI:
    secret = os.environ["BENCH_JWT_SECRET"]
    engine = create_async_engine(
        os.environ["BENCH_DATABASE_URL"], pool_size=10, max_overflow=0, pool_timeout=3
    )  # the same pool sizes as the project's defaults

    async def get_session():
        async with AsyncSession(engine) as session:
            yield session

    def current_user(user_id: str, authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing token")
        try:
            claims = jwt.decode(authorization[7:], secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.PyJWTError:
            raise HTTPException(401, "invalid token") from None
        if claims["sub"] != user_id:
            raise HTTPException(403, "not your tasks")
        return user_id

    Session = Annotated[AsyncSession, Depends(get_session)]
    User = Annotated[str, Depends(current_user)]

    async def owned(session: AsyncSession, user: str, task_id: int) -> Task:
        task = (await session.exec(select(Task).where(Task.id == task_id, Task.user_id == user))).first()
        if task is None:
            raise HTTPException(404, "task not found")
        return task

    app = FastAPI(title="baseline")
    prefix = "/api/{user_id}/tasks"

    @app.get(prefix, response_model=list[TaskOut])
    async def list_tasks(session: Session, user: User, limit: int = 50):
        statement = (
            select(Task)
            .where(Task.user_id == user)
            .order_by(Task.created_at.desc(), Task.id.desc())  # type: ignore[attr-defined]
            .limit(min(max(limit, 1), 100))
        )
        return (await session.exec(statement)).all()

    @app.post(prefix, response_model=TaskOut, status_code=201)
    async def create_task(session: Session, user: User, data: TaskIn):
        task = Task(user_id=user, **data.model_dump())
        session.add(task)
        await session.commit()
        await session.refresh(task)
        return task

    @app.get(prefix + "/{task_id}", response_model=TaskOut)
    async def get_task(session: Session, user: User, task_id: int):
        return await owned(session, user, task_id)

    @app.put(prefix + "/{task_id}", response_model=TaskOut)
    async def update_task(session: Session, user: User, task_id: int, data: TaskUpdate):
        task = await owned(session, user, task_id)
        for key, value in data.model_dump(exclude_unset=True).items():
            setattr(task, key, value)
        task.updated_at = _now()
        session.add(task)
        await session.commit()
        await session.refresh(task)
        return task

    @app.patch(prefix + "/{task_id}/complete", response_model=TaskOut)
    async def complete_task(session: Session, user: User, task_id: int, data: Completion | None = None):
        task = await owned(session, user, task_id)
        task.completed = (not task.completed) if data is None else data.completed
        task.updated_at = _now()
        session.add(task)
        await session.commit()
        await session.refresh(task)
        return task

    @app.delete(prefix + "/{task_id}", status_code=204)
    async def delete_task(session: Session, user: User, task_id: int):
        task = await owned(session, user, task_id)
        await session.delete(task)
        await session.commit()
        return Response(status_code=204)

    @app.get("/readyz")
    async def readyz(session: Session):
        await session.exec(select(Task.id).limit(1))
        return {"status": "ready"}

    return app
