"""Each user's share of the database: at most a few transactions at a time per user.

The per-minute rate limit counts requests; it cannot stop one user from holding every pooled
connection with a handful of slow ones (long searches, say), while everyone else waits and
gets 503. So each user may run at most `per_user` transactions at once in this process; the
rest wait, in arrival order, for up to `wait_seconds`, then get 429 for that user alone.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class ShareExceeded(Exception):
    """This user already runs as many transactions as allowed, and none finished in time."""


@dataclass
class _UserShare:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class DatabaseShares:
    def __init__(self, *, per_user: int, wait_seconds: float) -> None:
        self.per_user = per_user
        self.wait_seconds = wait_seconds
        self._shares: dict[str, _UserShare] = {}

    @asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        """Hold one of the user's slots for the block; ShareExceeded if none frees up in time."""
        await self.acquire(user_id)
        try:
            yield
        finally:
            self.release(user_id)

    async def acquire(self, user_id: str) -> None:
        """Take one of the user's slots, waiting in line if they are all taken; ShareExceeded if
        none frees up in time. Every successful acquire is followed by exactly one release."""
        share = self._shares.get(user_id)
        if share is None:
            share = self._shares[user_id] = _UserShare()
        if share.running < self.per_user and not share.waiting:
            share.running += 1
        else:
            await self._wait_for_slot(share)

    def release(self, user_id: str) -> None:
        share = self._shares[user_id]
        self._pass_on(share)
        if share.running == 0 and not share.waiting:
            del self._shares[user_id]

    async def _wait_for_slot(self, share: _UserShare) -> None:
        handed_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        share.waiting.append(handed_over)
        try:
            await asyncio.wait_for(asyncio.shield(handed_over), self.wait_seconds)
        except TimeoutError:
            self._give_up(share, handed_over)
            raise ShareExceeded() from None
        except asyncio.CancelledError:  # the client went away
            self._give_up(share, handed_over)
            raise

    def _give_up(self, share: _UserShare, handed_over: asyncio.Future[None]) -> None:
        if handed_over.done():
            self._pass_on(share)  # the slot arrived just as we gave up: the next in line takes it
        else:
            handed_over.cancel()
            share.waiting.remove(handed_over)

    def _pass_on(self, share: _UserShare) -> None:
        """A slot is free: the longest waiter takes it over, or it is given back."""
        while share.waiting:
            waiter = share.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        share.running -= 1

    def running(self, user_id: str) -> int:
        share = self._shares.get(user_id)
        return share.running if share else 0
