"""Public keys of an identity provider, fetched from its JWKS URL and cached.

Keys are fetched at start-up. A token naming an unknown `kid` triggers at most one refetch
per `min_refresh_seconds` (so key rotation works without a restart, and a flood of made-up
`kid`s cannot turn into a flood of requests to the provider). The `kid` is only ever a
dictionary key: keys are never fetched from URLs inside a token (`jku`, `x5u`).
"""

import asyncio
import logging
import time

import httpx
import jwt

logger = logging.getLogger("api.jwks")

MAX_JWKS_BYTES = 64 * 1024
# Symmetric keys never come from a JWKS: that is how HS256-with-a-public-key confusion starts.
ASYMMETRIC_KEY_TYPES = {"OKP", "EC", "RSA"}


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched, and no cached key fits the token."""


class JwksCache:
    def __init__(self, url: str, *, min_refresh_seconds: float, timeout_seconds: float) -> None:
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.timeout_seconds = timeout_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self.generation = 0  # counts key sets fetched: whatever was verified before is re-verified
        self._last_attempt = float("-inf")
        self._last_attempt_failed = False
        self._lock = asyncio.Lock()

    @property
    def algorithms(self) -> set[str]:
        """The algorithms of the cached keys: the default allow-list, decided by key type."""
        return {key.algorithm_name for key in self._keys.values()}

    async def start(self) -> None:
        """Fetch once at start-up; a provider that is down is retried on demand later."""
        async with self._lock:
            await self._refresh()

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named `kid`, refetching once if it is unknown; None if it does not exist."""
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:
            if time.monotonic() - self._last_attempt >= self.min_refresh_seconds:
                await self._refresh()
        key = self._lookup(kid)
        if key is None and self._last_attempt_failed:
            raise KeysUnavailable(self.url)
        return key

    def seconds_until_refetch(self) -> float:
        """How long until an unknown `kid` may fetch the JWKS again."""
        return max(0.0, self._last_attempt + self.min_refresh_seconds - time.monotonic())

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if isinstance(kid, str) else None

    async def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            document = await self._fetch()
            keys = _signing_keys(document)
            if keys.keys() != self._keys.keys():
                self.generation += 1
            self._keys = keys
            self._last_attempt_failed = False
        except (httpx.HTTPError, ValueError) as exc:
            self._last_attempt_failed = True
            logger.warning("could not fetch the JWKS from %s: %s", self.url, type(exc).__name__)

    async def _fetch(self) -> dict:
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
        document = httpx.Response(200, content=body).json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        return document


def _signing_keys(document: dict) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ASYMMETRIC_KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type or curve we cannot verify with: skip it, keep the rest
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else None] = key
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys
