"""Typed configuration, read from the environment and an optional `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crobot.services.audit_keys import KeySource

SLACK_API_URL = "https://slack.com/api/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    database_url: str = Field(default="sqlite:///crobot.db", alias="CROBOT_DATABASE_URL")
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    # OAuth distribution (installable into every partner's workspace): both set.
    slack_client_id: str | None = Field(default=None, alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(default=None, alias="SLACK_CLIENT_SECRET")
    slack_redirect_uri: str | None = Field(default=None, alias="SLACK_REDIRECT_URI")
    slack_api_url: str = Field(default=SLACK_API_URL, alias="CROBOT_SLACK_API_URL")
    default_tz: str = Field(default="UTC", alias="CROBOT_DEFAULT_TZ")
    log_level: str = Field(default="INFO", alias="CROBOT_LOG_LEVEL")
    scheduler_enabled: bool = Field(default=True, alias="CROBOT_SCHEDULER")
    digest_grace_hours: float = Field(default=6.0, alias="CROBOT_DIGEST_GRACE_HOURS")
    listener_workers: int = Field(default=16, alias="CROBOT_LISTENER_WORKERS", ge=1, le=256)
    # How long a claimed outbox row (a digest, a notice, an approval post) belongs to the
    # process that claimed it; after that any scheduler may take it over (a dead replica).
    outbox_lease_seconds: float = Field(default=120.0, alias="CROBOT_OUTBOX_LEASE_SECONDS", gt=0)
    # How often each scheduler looks for pending outbox rows (expired claims, failed kicks).
    outbox_sweep_seconds: float = Field(default=60.0, alias="CROBOT_OUTBOX_SWEEP_SECONDS", gt=0)
    # Worker processes for a digest fan-out (digests/pool.py): unset, one per core; 1 runs
    # it on threads in the scheduler's own process.
    digest_processes: int | None = Field(default=None, alias="CROBOT_DIGEST_PROCESSES", ge=1, le=64)
    # The audit chain's HMAC keys (services/audit_keys.py): `id:base64` entries, comma-
    # separated, the last one current; or a file of such lines. Neither: SQLite keeps a key
    # file beside the database, PostgreSQL refuses to write audit events.
    audit_key: SecretStr | None = Field(default=None, alias="CROBOT_AUDIT_KEY")
    audit_key_file: Path | None = Field(default=None, alias="CROBOT_AUDIT_KEY_FILE")

    def audit_key_source(self) -> KeySource:
        key = self.audit_key.get_secret_value() if self.audit_key else None
        return KeySource(self.database_url, key, self.audit_key_file)

    @property
    def oauth(self) -> bool:
        """Several workspaces, installed through OAuth (else one workspace, one token)."""
        secret = self.slack_client_secret.get_secret_value() if self.slack_client_secret else ""
        return bool(self.slack_client_id and secret)

    @field_validator("default_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin)") from exc
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url verbatim.
        return value if value.endswith("/") else value + "/"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
