"""Per-user rate limiting in fixed windows, kept in this process's memory.

Each server process counts on its own: with N processes behind a load balancer a user may
make up to N times the limit. The limit is a guard against runaway clients, not a quota.
"""

import math
import time
from dataclasses import dataclass

from starlette.requests import Request

from api.edge.errors import TooManyRequests
from api.edge.middleware import add_response_headers

MAX_TRACKED_USERS = 100_000


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self, window_seconds: int) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={window_seconds}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    def __init__(self, *, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._windows: dict[str, tuple[int, int]] = {}  # user -> (window number, requests in it)

    def hit(self, user_id: str, *, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        window = int(now // self.window_seconds)
        started, count = self._windows.get(user_id, (window, 0))
        count = count + 1 if started == window else 1
        self._remember(user_id, window, count)
        reset = max(1, math.ceil((window + 1) * self.window_seconds - now))
        return Verdict(
            allowed=count <= self.limit,
            limit=self.limit,
            remaining=max(0, self.limit - count),
            reset_seconds=reset,
        )

    def _remember(self, user_id: str, window: int, count: int) -> None:
        if len(self._windows) >= MAX_TRACKED_USERS and user_id not in self._windows:
            # Forget users whose window is over; they would start from zero anyway.
            self._windows = {user: entry for user, entry in self._windows.items() if entry[0] == window}
        self._windows[user_id] = (window, count)


def enforce_rate_limit(request: Request, limiter: RateLimiter, user_id: str) -> None:
    """429 once the caller has used up this window; every answer says how much is left."""
    verdict = limiter.hit(user_id)
    headers = verdict.headers(limiter.window_seconds)
    if not verdict.allowed:
        raise TooManyRequests("too many requests; slow down", reason="rate_limit", headers=headers)
    add_response_headers(request, headers)
