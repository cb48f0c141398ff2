"""Engine set-up and settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text

from crobot.bot.settings import Settings
from crobot.storage.db import Database, normalise_url


def test_sqlite_runs_with_foreign_keys_and_wal(sqlite_db: Database) -> None:
    with sqlite_db.read() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    with pytest.raises(Exception, match="FOREIGN KEY"), sqlite_db.write() as s:
        s.execute(text("INSERT INTO study_vendors (study_id, org_id) VALUES (999, 999)"))


def test_plain_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_secrets_are_never_printed() -> None:
    s = Settings(
        SLACK_BOT_TOKEN=SecretStr("xoxb-very-secret"), SLACK_SIGNING_SECRET=SecretStr("sig-secret")
    )
    assert "very-secret" not in repr(s) and "sig-secret" not in str(s.model_dump())
    assert s.slack_api_url.endswith("/")


def test_bad_time_zone_setting_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        Settings(CROBOT_DEFAULT_TZ="Mars/Base")
