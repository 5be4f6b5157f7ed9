"""The connection pool is fair: requests waiting for a connection get one in the order they came."""

import asyncio

import psycopg
import pytest

from api.database.pool import Pool, PoolTimeout


async def _waiters_in_order(app_url: str, count: int) -> list[int]:
    pool = Pool(lambda: psycopg.AsyncConnection.connect(app_url), size=1, max_size=1, timeout_seconds=30)
    served: list[int] = []

    async def wait_and_use(number: int) -> None:
        async with pool.connection():
            served.append(number)

    held = await pool.acquire()
    waiters = []
    for number in range(count):
        waiters.append(asyncio.create_task(wait_and_use(number)))
        while pool.waiting < number + 1:  # in line before the next one comes
            await asyncio.sleep(0)
    pool.release(held)
    await asyncio.gather(*waiters)
    await pool.close()
    return served


def test_waiting_requests_are_served_first_come_first_served(app_url):
    assert asyncio.run(_waiters_in_order(app_url, 8)) == list(range(8))


async def _one_gives_up(app_url: str) -> tuple[bool, int]:
    pool = Pool(lambda: psycopg.AsyncConnection.connect(app_url), size=1, max_size=1, timeout_seconds=0.05)
    held = await pool.acquire()
    with pytest.raises(PoolTimeout):
        await pool.acquire()  # nobody releases in time
    pool.timeout_seconds = 30
    later = asyncio.create_task(pool.acquire())
    while pool.waiting < 1:
        await asyncio.sleep(0)
    pool.release(held)
    connection = await later
    answer = (await (await connection.execute("select 1")).fetchone())[0]
    pool.release(connection)
    waiting_after = pool.waiting
    await pool.close()
    return answer == 1, waiting_after


def test_a_waiter_that_gave_up_leaves_the_line_and_the_next_is_served(app_url):
    assert asyncio.run(_one_gives_up(app_url)) == (True, 0)


async def _cancelled_waiters(app_url: str) -> tuple[int, int, int, bool]:
    pool = Pool(lambda: psycopg.AsyncConnection.connect(app_url), size=1, max_size=1, timeout_seconds=30)
    held = await pool.acquire()
    cancelled_in_line = asyncio.create_task(pool.acquire())
    handed_then_cancelled = asyncio.create_task(pool.acquire())
    last = asyncio.create_task(pool.acquire())
    while pool.waiting < 3:
        await asyncio.sleep(0)
    cancelled_in_line.cancel()  # gives up while nothing is free: leaves the line
    await asyncio.gather(cancelled_in_line, return_exceptions=True)
    waiting_after_cancel = pool.waiting
    pool.release(held)  # handed to the next in line...
    handed_then_cancelled.cancel()  # ...which is cancelled before it could take it: passed on
    await asyncio.gather(handed_then_cancelled, return_exceptions=True)
    connection = await asyncio.wait_for(last, 10)
    in_use, waiting = pool.in_use, pool.waiting
    pool.release(connection)
    await pool.close()
    return waiting_after_cancel, in_use, waiting, handed_then_cancelled.cancelled()


def test_a_cancelled_waiter_leaves_the_line_and_passes_on_a_connection_it_was_handed(app_url):
    assert asyncio.run(_cancelled_waiters(app_url)) == (2, 1, 0, True)


async def _waiter_behind_a_served_one(app_url: str) -> tuple[float, int, int]:
    timeout = 0.3
    pool = Pool(lambda: psycopg.AsyncConnection.connect(app_url), size=1, max_size=1, timeout_seconds=timeout)
    loop = asyncio.get_running_loop()
    held = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    while pool.waiting < 1:
        await asyncio.sleep(0)
    await asyncio.sleep(timeout / 3)  # the second in line comes later: its deadline is later
    started = loop.time()
    second = asyncio.create_task(pool.acquire())
    while pool.waiting < 2:
        await asyncio.sleep(0)
    pool.release(held)  # the first is served before its deadline; nobody releases again
    connection = await first
    with pytest.raises(PoolTimeout):
        await asyncio.wait_for(second, 10)  # not left waiting once the first one's deadline has passed
    waited = loop.time() - started
    waiting, in_use = pool.waiting, pool.in_use
    pool.release(connection)
    await pool.close()
    return waited, waiting, in_use


def test_a_waiter_behind_one_that_was_served_gives_up_after_its_own_timeout(app_url):
    waited, waiting, in_use = asyncio.run(_waiter_behind_a_served_one(app_url))
    assert waited >= 0.3 - 0.002  # its full timeout (a timer may fire a millisecond early)
    assert (waiting, in_use) == (0, 1)
