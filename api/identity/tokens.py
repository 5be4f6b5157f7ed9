"""Bearer tokens: who is calling, decided without touching the database.

Tokens are verified with a shared HS256 secret, with an identity provider's public keys
(JWKS: Better Auth, Neon Auth, Supabase, ...), or with either. The algorithm allowed for a
token is decided by our configuration and the key's type, never by the token itself.
"""

import math
import time
from typing import Any

import jwt

from api.config import HMAC_ALGORITHMS, PUBLIC_KEY_ALGORITHMS, Settings
from api.edge.errors import ServiceUnavailable, Unauthorized
from api.identity.jwks import JwksCache, KeysUnavailable

DEFAULT_HMAC_ALGORITHM = "HS256"
MAX_SUBJECT_LENGTH = 255
MAX_TOKEN_LENGTH = 8192

# PyJWT's exceptions, most specific first, and the short reason a client is told.
_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.exceptions.InvalidSubjectError, "invalid subject"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.DecodeError, "malformed token"),
]


class BadSignature(Unauthorized):
    """The signature does not verify with the key the token names."""


NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")


def _is_numeric_date(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mint_token(
    secret: str, user_id: str, *, ttl_seconds: int = 3600, issuer: str | None = None, audience: str | None = None
) -> str:
    """A signed HS256 token for local use and tests; with the `iss` and `aud` the server requires."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    claims |= {"iss": issuer} if issuer else {}
    claims |= {"aud": audience} if audience else {}
    return jwt.encode(claims, secret, algorithm=DEFAULT_HMAC_ALGORITHM)


def is_valid_user_id(value: object) -> bool:
    """A user id is a non-empty, bounded string without control characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SUBJECT_LENGTH and value.isprintable()


class VerifiedTokens:
    """Tokens verified in the last few seconds, and their subjects (as PostgREST's JWT cache).

    Verifying a signature, an EdDSA or RSA one above all, costs more than the rest of a short
    request. An entry lives until the token's `exp` or `max_age_seconds`, whichever is first,
    so a cached token is never accepted after it expires, and only while the JWKS holds the
    same keys as when it was verified (`generation`). Only fully verified tokens are cached.
    """

    def __init__(self, *, max_age_seconds: float, max_entries: int = 10_000) -> None:
        self.max_age_seconds = max_age_seconds
        self.max_entries = max_entries
        self._subjects: dict[str, tuple[str, float, int]] = {}

    def subject(self, token: str, *, generation: int) -> str | None:
        entry = self._subjects.get(token)
        if entry is None:
            return None
        subject, valid_until, verified_in = entry
        if time.time() >= valid_until or verified_in != generation:
            del self._subjects[token]
            return None
        return subject

    def remember(self, token: str, subject: str, *, expires_at: float, generation: int) -> None:
        if self.max_age_seconds <= 0:
            return
        if len(self._subjects) >= self.max_entries:
            del self._subjects[next(iter(self._subjects))]  # the oldest entry
        valid_until = min(expires_at, time.time() + self.max_age_seconds)
        self._subjects[token] = (subject, valid_until, generation)


class TokenVerifier:
    def __init__(self, settings: Settings, jwks: JwksCache | None) -> None:
        self.verified = VerifiedTokens(max_age_seconds=settings.jwt_cache_seconds)
        self.secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.jwks = jwks
        self.explicit_algorithms = settings.allowed_algorithms
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway_seconds = settings.jwt_leeway_seconds
        self.required_claims = ["exp", "sub"]
        self.required_claims += ["iss"] if self.issuer else []
        self.required_claims += ["aud"] if self.audience else []

    async def subject(self, token: str) -> str:
        """The token's `sub`, or Unauthorized with a short reason that leaks nothing."""
        generation = self.jwks.generation if self.jwks is not None else 0
        # Once the key set is due for a refetch, tokens are verified afresh (which refetches it),
        # so a withdrawn key stops working on schedule even for tokens verified before.
        if self.jwks is None or not self.jwks.expired:
            cached = self.verified.subject(token, generation=generation)
            if cached is not None:
                return cached
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        if "crit" in header:
            raise Unauthorized("unsupported critical header")  # we implement no extensions
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or not self._allows(algorithm):
            raise Unauthorized("algorithm not allowed")
        key = await self._key_for(algorithm, kid)
        try:
            claims = self._decode(token, key, algorithm)
        except BadSignature:
            # Perhaps the provider replaced the key under the same kid: one rate-limited refetch.
            named = kid if isinstance(kid, str) else None
            replacement = await self.jwks.replacement_for(named) if isinstance(key, jwt.PyJWK) and self.jwks else None
            if replacement is None or replacement.algorithm_name != algorithm:
                raise
            claims = self._decode(token, replacement, algorithm)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not is_valid_user_id(subject):
            raise Unauthorized("invalid subject")
        self.verified.remember(token, subject, expires_at=claims["exp"], generation=generation)
        return subject

    def _allows(self, algorithm: str) -> bool:
        if self.explicit_algorithms is not None:
            return algorithm in self.explicit_algorithms
        return algorithm == DEFAULT_HMAC_ALGORITHM or algorithm in PUBLIC_KEY_ALGORITHMS

    async def _key_for(self, algorithm: str, kid: object) -> str | jwt.PyJWK:
        """The secret, or the provider's key named `kid`, for this (allowed) algorithm."""
        if algorithm in HMAC_ALGORITHMS and self.secret is not None:
            return self.secret
        if algorithm in PUBLIC_KEY_ALGORITHMS and self.jwks is not None:
            if kid is not None and not isinstance(kid, str):
                raise Unauthorized("malformed token")
            try:
                key = await self.jwks.key_for(kid)
            except KeysUnavailable:
                # Retrying before the next refetch is allowed would only meet this answer again.
                wait = max(1, math.ceil(self.jwks.seconds_until_refetch()))
                detail = "the identity provider's keys are unavailable"
                raise ServiceUnavailable(detail, cause="identity_provider", retry_after_seconds=wait) from None
            if key is None:
                raise Unauthorized("unknown signing key")
            if key.algorithm_name != algorithm:  # the key's type decides, not the token
                raise Unauthorized("algorithm not allowed")
            return key
        raise Unauthorized("algorithm not allowed")

    def _decode(self, token: str, key: str | jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": self.required_claims, "verify_aud": self.audience is not None},
            )
        except jwt.InvalidSignatureError:
            raise BadSignature("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), "invalid token")
            raise Unauthorized(reason) from None
        # PyJWT compares int(claim) with the clock, so "exp": "1999999999" passes its checks;
        # RFC 7519 says NumericDate, a JSON number.
        for name in NUMERIC_DATE_CLAIMS:
            if name in claims and not _is_numeric_date(claims[name]):
                raise Unauthorized(f"invalid {name} claim")
        return claims
