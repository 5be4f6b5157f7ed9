"""All settings, read once from the environment (and an optional `.env`)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Where the data lives. Unset: the embedded PostgreSQL under `data_dir`.
    database_url: str | None = None
    # DDL goes over a direct connection, never through a transaction pooler.
    migrations_database_url: str | None = None
    data_dir: Path = Field(default=Path(".data"), validation_alias="TASKAPI_DATA_DIR")

    jwt_secret: SecretStr | None = None
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300, validation_alias="JWT_LEEWAY")

    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)

    @field_validator("database_url", "migrations_database_url")
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
