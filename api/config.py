"""All settings, read once from the environment (and an optional `.env`)."""

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
PUBLIC_KEY_ALGORITHMS = {
    "EdDSA",
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
}
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS  # never "none"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False, populate_by_name=True)

    # Where the data lives. Unset: the embedded PostgreSQL under `data_dir`.
    database_url: str | None = None
    # DDL goes over a direct connection, never through a transaction pooler.
    migrations_database_url: str | None = None
    data_dir: Path = Field(default=Path(".data"), validation_alias="TASKAPI_DATA_DIR")

    # Tokens: a shared HS256 secret, an identity provider's JWKS, or both.
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Comma-separated allow-list; unset: HS256 with a secret, and each JWKS key's own algorithm.
    jwt_algorithms: str | None = None
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300, validation_alias="JWT_LEEWAY")
    # An unknown `kid` (a key rotation) refetches the JWKS, at most once per this many seconds;
    # a request meeting a fresh fetch waits for the next one rather than failing.
    jwt_jwks_min_refresh_seconds: float = Field(default=2.0, ge=0, le=30)
    # Keys are refetched after the provider's Cache-Control max-age, at most this long: a key the
    # provider withdraws stops verifying within this time (plus JWT_CACHE_SECONDS).
    jwt_jwks_max_age_seconds: float = Field(default=300.0, ge=10, le=86400)
    jwt_jwks_timeout_seconds: float = Field(default=3.0, gt=0)
    # Seconds a verified token is remembered (never past its `exp`); 0 verifies every request.
    jwt_cache_seconds: float = Field(default=30.0, ge=0, le=3600)

    # The edge.
    max_body_bytes: int = Field(default=32 * 1024, ge=1024)
    rate_limit_per_minute: int = Field(default=600, ge=0)  # 0 turns it off

    # GET requests may read from a replica; RLS applies there exactly as on the primary.
    database_read_url: str | None = None

    # A steady pool: connections opened for a burst and closed after it would each cost a
    # handshake, several round trips on a serverless database.
    db_pool_size: int = Field(default=10, ge=1, le=100)
    db_max_overflow: int = Field(default=0, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0)
    # The whole budget for opening a connection, retries with backoff included (cold starts).
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)  # 0: no limit
    db_lock_timeout_ms: int = Field(default=2000, ge=0)
    db_retry_attempts: int = Field(default=3, ge=1, le=10)  # for serialization failures, deadlocks
    # One user's share of the pool: transactions at once per user and process; more wait up to
    # DB_POOL_TIMEOUT_SECONDS, then get 429. Keeps one user's slow requests from starving everyone.
    db_connections_per_user: int = Field(default=3, ge=1, le=100)
    # A substring search (`q`) or a tag filter is cancelled after this long (0: only DB_STATEMENT_TIMEOUT_MS).
    db_search_timeout_ms: int = Field(default=500, ge=0)

    log_format: Literal["auto", "json", "text"] = "auto"
    # GET /metrics in Prometheus' text format, with no token (keep it off the public internet).
    metrics_enabled: bool = True
    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses or CIDRs, or
    # "*"). Unset: none, so a client cannot claim another address or scheme by sending them.
    forwarded_allow_ips: str | None = None

    # Browser frontends on other origins, comma-separated (e.g. https://app.example.com).
    # None by default: a browser on another origin cannot read any answer.
    cors_origins: str | None = None
    cors_max_age_seconds: int = Field(default=600, ge=0, le=86400)
    # The demo page under /demo/. Unset: on for the embedded database (local use), off otherwise.
    demo_page: bool | None = None
    # How long a POST's Idempotency-Key and its stored answer are kept.
    idempotency_key_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)

    @field_validator(
        "database_url",
        "migrations_database_url",
        "jwt_jwks_url",
        "jwt_issuer",
        "jwt_audience",
        "jwt_algorithms",
        "cors_origins",
        "forwarded_allow_ips",
    )
    @classmethod
    def blank_means_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("jwt_secret")
    @classmethod
    def refuse_weak_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def known_algorithms(cls, value: str | None) -> str | None:
        if not value:
            return None
        unknown = {name.strip() for name in value.split(",")} - SUPPORTED_ALGORITHMS
        if unknown:
            raise ValueError(f"unsupported algorithm(s) {sorted(unknown)}; choose from {sorted(SUPPORTED_ALGORITHMS)}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def exact_origins(cls, value: str | None) -> str | None:
        if not value:
            return None
        for origin in value.split(","):
            origin = origin.strip()
            if origin == "*" or not re.fullmatch(r"https?://[^/\s*]+", origin):
                raise ValueError(f"CORS_ORIGINS takes exact origins (https://app.example.com), not {origin!r}")
        return value

    @model_validator(mode="after")
    def consistent_auth(self) -> "Settings":
        algorithms = self.allowed_algorithms or set()
        if algorithms & HMAC_ALGORITHMS and self.jwt_secret is None:
            raise ValueError("JWT_ALGORITHMS allows HMAC algorithms but JWT_SECRET is not set")
        if algorithms - HMAC_ALGORITHMS and self.jwt_jwks_url is None:
            raise ValueError("JWT_ALGORITHMS allows public-key algorithms but JWT_JWKS_URL is not set")
        return self

    @property
    def allowed_algorithms(self) -> set[str] | None:
        """The explicit allow-list, or None to default by key type."""
        if self.jwt_algorithms is None:
            return None
        return {name.strip() for name in self.jwt_algorithms.split(",")}

    @property
    def connections_per_user(self) -> int:
        """DB_CONNECTIONS_PER_USER, never more than the pool holds."""
        return min(self.db_connections_per_user, self.db_pool_size + self.db_max_overflow)

    @property
    def allowed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",")] if self.cors_origins else []

    @property
    def serves_demo_page(self) -> bool:
        return self.embedded if self.demo_page is None else self.demo_page

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is given and the embedded server is used."""
        return self.database_url is None

    @property
    def direct_database_url(self) -> str | None:
        return self.migrations_database_url or self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
