"""Public keys of an identity provider, fetched from its JWKS URL and cached.

Keys are fetched at start-up and again on a schedule: after the response's
`Cache-Control: max-age`, kept between `MIN_MAX_AGE_SECONDS` and `max_age_seconds`, so a key
the provider withdraws stops verifying within minutes even if no token ever names a new `kid`.

A token naming an unknown `kid` (a rotation) refetches at once, or, if a fetch happened less
than `min_refresh_seconds` ago, waits for the next allowed one and shares it with every other
request waiting meanwhile: a new key is accepted within seconds, and a flood of made-up `kid`s
costs the provider at most one request per `min_refresh_seconds`. A known `kid` whose
signature fails may refetch once (a key replaced under the same `kid`), within the same
budget, without waiting. While the provider cannot be reached, the keys already fetched keep
working. The `kid` is only ever a dictionary key: keys are never fetched from URLs inside a
token (`jku`, `x5u`).
"""

import asyncio
import json
import logging
import re
import time
from typing import Any

import httpx
import jwt

from api.edge.metrics import JWKS_FETCHES

logger = logging.getLogger("api.identity.jwks")

MAX_JWKS_BYTES = 64 * 1024
# Symmetric keys never come from a JWKS: that is how HS256-with-a-public-key confusion starts.
ASYMMETRIC_KEY_TYPES = {"OKP", "EC", "RSA"}
# A provider asking for max-age=0 (or no-cache) would otherwise be asked on every request.
MIN_MAX_AGE_SECONDS = 10.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched, and no cached key fits the token."""


class JwksCache:
    def __init__(self, url: str, *, min_refresh_seconds: float, max_age_seconds: float, timeout_seconds: float) -> None:
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout_seconds = timeout_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._published: dict[str | None, str] = {}  # kid -> the JWK as published, canonical JSON
        self.generation = 0  # bumped whenever the key material changes: cached verdicts are redone
        self.fetches = 0  # fetches completed so far, failed ones included
        self._last_attempt = float("-inf")
        self._last_attempt_failed = False
        self._expires = float("-inf")  # when the keys fetched last should be fetched again
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Fetch once at start-up; a provider that is down is retried on demand later."""
        async with self._lock:
            await self._refresh()

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named `kid`, refetching if it is unknown; None if the provider has no such key."""
        arrived_after = self.fetches
        if self.expired:
            await self._refresh_when_expired()
        key = self._lookup(kid)
        if key is not None:
            return key
        if self._last_attempt_failed and self.seconds_until_refetch() > 0:
            raise KeysUnavailable(self.url)  # the provider is down: waiting would not help
        await self._refetch_soon(arrived_after)
        key = self._lookup(kid)
        if key is None and self._last_attempt_failed:
            raise KeysUnavailable(self.url)
        return key

    async def replacement_for(self, kid: str | None) -> jwt.PyJWK | None:
        """After the key named `kid` failed a signature: fetch the keys again (as for an unknown
        `kid`) and return the key now published under that `kid` if it changed (replaced in place)."""
        arrived_after, before = self.fetches, self._published.get(kid)
        await self._refetch_soon(arrived_after)
        return self._lookup(kid) if self._published.get(kid) != before else None

    @property
    def expired(self) -> bool:
        """The keys are due to be fetched again (their max-age has passed)."""
        return time.monotonic() >= self._expires

    def seconds_until_refetch(self) -> float:
        """How long until the JWKS may be fetched again."""
        return max(0.0, self._last_attempt + self.min_refresh_seconds - time.monotonic())

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if isinstance(kid, str) else None

    async def _refresh_when_expired(self) -> None:
        async with self._lock:
            if self.expired and self.seconds_until_refetch() == 0:
                await self._refresh()

    async def _refetch_soon(self, arrived_after: int) -> None:
        """One fetch, as soon as one is allowed, shared by every request that waits for it.

        `arrived_after`: the fetches completed when the request arrived; any fetch since is news.
        """
        async with self._lock:
            if self.fetches != arrived_after:
                return  # a fetch ran since this request arrived: its answer is the news
            await asyncio.sleep(self.seconds_until_refetch())
            await self._refresh()

    async def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            document, max_age = await self._fetch()
            keys, published = _signing_keys(document)
        except (httpx.HTTPError, ValueError) as exc:
            JWKS_FETCHES.labels("failure").inc()
            self._last_attempt_failed = True
            # Keep the keys already fetched; retry once min_refresh_seconds have passed.
            self._expires = self._last_attempt + self.min_refresh_seconds
            logger.warning("could not fetch the JWKS from %s: %s", self.url, type(exc).__name__)
            return
        finally:
            self.fetches += 1
        JWKS_FETCHES.labels("success").inc()
        if published != self._published:
            self.generation += 1
        self._keys, self._published = keys, published
        self._last_attempt_failed = False
        self._expires = self._last_attempt + max_age

    async def _fetch(self) -> tuple[dict[str, Any], float]:
        """The JWKS document, and how long it may be used."""
        async with (
            httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
            cache_control = response.headers.get("cache-control", "")
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        return document, self._max_age(cache_control)

    def _max_age(self, cache_control: str) -> float:
        """The provider's max-age, kept between MIN_MAX_AGE_SECONDS and our own ceiling."""
        if _NO_CACHE.search(cache_control):
            return min(MIN_MAX_AGE_SECONDS, self.max_age_seconds)
        match = _MAX_AGE.search(cache_control)
        if match is None:
            return self.max_age_seconds
        return min(max(float(match.group(1)), MIN_MAX_AGE_SECONDS), self.max_age_seconds)


def _signing_keys(document: dict[str, Any]) -> tuple[dict[str | None, jwt.PyJWK], dict[str | None, str]]:
    """The usable signing keys by `kid`, and each as published (to notice a key replaced in place)."""
    keys: dict[str | None, jwt.PyJWK] = {}
    published: dict[str | None, str] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ASYMMETRIC_KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type or curve we cannot verify with: skip it, keep the rest
        kid = entry.get("kid") if isinstance(entry.get("kid"), str) else None
        keys[kid] = key
        published[kid] = json.dumps(entry, sort_keys=True)
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys, published
