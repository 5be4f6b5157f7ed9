"""The app-wide objects a request may need, in one typed place (`app.state.services`)."""

from dataclasses import dataclass

from api.config import Settings
from api.database.engine import Database
from api.database.shares import DatabaseShares
from api.identity.jwks import JwksCache
from api.identity.ratelimit import RateLimiter
from api.identity.tokens import TokenVerifier


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    jwks: JwksCache | None
    rate_limiter: RateLimiter | None
    shares: DatabaseShares
    primary: Database
    replica: Database | None  # GET requests read here when DATABASE_READ_URL is set

    @classmethod
    def from_settings(cls, settings: Settings) -> "Services":
        if settings.database_url is None:
            raise RuntimeError("DATABASE_URL is not set (`taskapi serve` sets up the embedded one)")
        jwks = _jwks_cache(settings)
        limit = settings.rate_limit_per_minute
        return cls(
            settings=settings,
            verifier=TokenVerifier(settings, jwks),
            jwks=jwks,
            rate_limiter=RateLimiter(limit=limit, window_seconds=60) if limit else None,
            shares=DatabaseShares(
                per_user=settings.connections_per_user, wait_seconds=settings.db_pool_timeout_seconds
            ),
            primary=Database(settings.database_url, settings),
            replica=Database(settings.database_read_url, settings, name="replica")
            if settings.database_read_url
            else None,
        )

    @property
    def databases(self) -> list[Database]:
        return [self.primary] + ([self.replica] if self.replica else [])

    def database_for(self, method: str) -> Database:
        """Reads may go to the replica; everything else goes to the primary."""
        return self.replica if self.replica is not None and method in ("GET", "HEAD") else self.primary


def _replica(settings: Settings) -> Database | None:
    return Database(settings.database_read_url, settings, name="replica") if settings.database_read_url else None


def _jwks_cache(settings: Settings) -> JwksCache | None:
    if settings.jwt_jwks_url is None:
        return None
    return JwksCache(
        settings.jwt_jwks_url,
        min_refresh_seconds=settings.jwt_jwks_min_refresh_seconds,
        max_age_seconds=settings.jwt_jwks_max_age_seconds,
        timeout_seconds=settings.jwt_jwks_timeout_seconds,
    )
