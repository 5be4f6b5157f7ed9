"""A small, fair pool of psycopg connections: first come, first served.

Why not SQLAlchemy's pool or psycopg_pool: on the hot path each costs more than the rest of a
short request (greenlet hops; locks, conditions and log calls), and a request needs only this:
take an idle connection or wait in line for one, give it back, and never hand out a dead one
twice. Waiting is FIFO, so no request starves while later ones are served.
"""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

logger = logging.getLogger("api.database")

Connection = psycopg.AsyncConnection[Any]
Waiter = asyncio.Future[Connection]
# A timer may fire up to the loop's clock resolution early; a waiter this close to its deadline
# has waited its time.
_TIMER_SLACK_SECONDS = 0.001


class PoolTimeout(Exception):
    """No connection came free within the pool's timeout."""


class Pool:
    """At most `max_size` connections; `size` of them are kept open while idle."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        *,
        size: int,
        max_size: int,
        timeout_seconds: float,
        on_change: Callable[["Pool"], None] | None = None,
    ) -> None:
        self._connect = connect
        self.size = size
        self.max_size = max_size
        self.timeout_seconds = timeout_seconds
        self._on_change = on_change
        self._idle: deque[Connection] = deque()
        self._waiting: deque[tuple[Waiter, float]] = deque()  # each with its deadline (loop time)
        self._line_timer: asyncio.TimerHandle | None = None  # at the earliest deadline in line
        self._opened = 0  # connections open or being opened
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_use(self) -> int:
        return self._opened - len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for the block; it goes back to the pool (or is dropped, if broken) after."""
        connection = await self.acquire()
        try:
            yield connection
        finally:
            self.release(connection)

    async def acquire(self) -> Connection:
        if self._closed:
            raise PoolTimeout("the pool is closed")
        while self._idle and not self._waiting:
            connection = self._idle.pop()  # the most recently used: warm, and surely alive
            if not connection.closed:
                self._changed()
                return connection
            self._opened -= 1
        if self._opened < self.max_size and not self._waiting:
            return await self._open()
        return await self._wait_in_line()

    def release(self, connection: Connection) -> None:
        """Give a connection back; a broken one is closed, and a waiter gets a fresh one."""
        if self._closed or not _reusable(connection):
            self._drop(connection)
        elif not self._hand_to_waiter(connection):
            if len(self._idle) < self.size:
                self._idle.append(connection)
            else:  # an overflow connection, not needed now
                self._drop(connection)
        self._changed()

    async def close_idle(self) -> None:
        """Close every idle connection (after one was found dead, the others likely are too)."""
        while self._idle:
            connection = self._idle.popleft()
            self._opened -= 1
            await connection.close()
        self._changed()

    async def close(self) -> None:
        self._closed = True
        if self._line_timer is not None:
            self._line_timer.cancel()
        for waiter, _ in self._waiting:
            if not waiter.done():
                waiter.set_exception(PoolTimeout("the pool is closed"))
        self._waiting.clear()
        await self.close_idle()

    async def _open(self) -> Connection:
        self._opened += 1
        self._changed()
        try:
            return await self._connect()
        except BaseException:
            self._opened -= 1
            self._changed()
            self._replace_for_waiter()
            raise

    async def _wait_in_line(self) -> Connection:
        loop = asyncio.get_running_loop()
        handed_over: Waiter = loop.create_future()
        deadline = loop.time() + self.timeout_seconds
        self._waiting.append((handed_over, deadline))
        self._changed()
        # One timer for the whole line, not one per waiter: every request waits here while all
        # connections are busy, and a timer each (or asyncio.wait_for) cost more than the wait.
        if self._line_timer is None or deadline < self._line_timer.when():
            self._arm_line_timer(loop, deadline)
        try:
            return await handed_over
        except asyncio.CancelledError:
            if handed_over.done() and not handed_over.cancelled() and handed_over.exception() is None:
                self.release(handed_over.result())  # it arrived as we gave up: pass it on
            else:
                handed_over.cancel()
                self._leave_line(handed_over)
            raise

    def _arm_line_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._line_timer is not None:
            self._line_timer.cancel()
        self._line_timer = loop.call_at(deadline, self._give_up_overdue, loop)

    def _give_up_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail every waiter whose time is up; the timer then waits for the next deadline."""
        self._line_timer = None
        now = loop.time() + _TIMER_SLACK_SECONDS
        overdue = [waiter for waiter, deadline in self._waiting if deadline <= now]
        for waiter in overdue:
            if not waiter.done():
                waiter.set_exception(PoolTimeout(f"no connection came free in {self.timeout_seconds:g} s"))
            self._leave_line(waiter)
        if self._waiting:
            self._arm_line_timer(loop, min(deadline for _, deadline in self._waiting))

    def _leave_line(self, waiter: Waiter) -> None:
        for entry in self._waiting:
            if entry[0] is waiter:
                self._waiting.remove(entry)
                break
        self._changed()

    def _hand_to_waiter(self, connection: Connection) -> bool:
        while self._waiting:
            waiter, _ = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def _drop(self, connection: Connection) -> None:
        self._opened -= 1
        if not connection.closed:
            self._in_background(connection.close())
        self._replace_for_waiter()

    def _replace_for_waiter(self) -> None:
        """A connection went away while requests wait: open one for the first of them."""
        if self._waiting and self._opened < self.max_size and not self._closed:
            self._opened += 1
            self._in_background(self._open_for_waiter())

    async def _open_for_waiter(self) -> None:
        try:
            connection = await self._connect()
        except Exception as exc:
            self._opened -= 1
            logger.warning("could not open a database connection: %s", type(exc).__name__)
            while self._waiting:  # the database is unreachable: say so to the one first in line
                waiter, _ = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            self._changed()
            return
        self.release(connection)  # to the first in line, as if it had been in use

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # kept until done: the loop holds only a weak reference
        task.add_done_callback(self._tasks.discard)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)


def _reusable(connection: Connection) -> bool:
    """Alive, and between transactions (a request cancelled mid-query leaves neither certain)."""
    return (
        not connection.closed and not connection.broken and connection.info.transaction_status == TransactionStatus.IDLE
    )
