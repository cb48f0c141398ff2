"""Engine set-up and settings."""

from __future__ import annotations

from datetime import timedelta

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


def test_outbox_lease_and_sweep_default_to_two_minutes_and_one() -> None:
    s = Settings()
    assert (s.outbox_lease_seconds, s.outbox_sweep_seconds) == (120, 60)


@pytest.mark.parametrize("name", ["CROBOT_OUTBOX_LEASE_SECONDS", "CROBOT_OUTBOX_SWEEP_SECONDS"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_outbox_lease_and_sweep_must_be_positive(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="greater than 0"):
        Settings()


def test_outbox_lease_and_sweep_reach_every_delivery_of_the_serve_process(
    sqlite_db: Database,
) -> None:
    """`crobot serve` builds its runtime, Bolt app (approvals outbox) and scheduler from
    the settings: all of them use the configured lease, the sweep job its interval."""
    from crobot.bot.runners import build
    from crobot.bot.scheduling import DigestScheduler
    from crobot.handlers.approvals.outbox import ApprovalOutbox

    settings = Settings(
        CROBOT_DATABASE_URL=sqlite_db.url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-test-token"),
        SLACK_SIGNING_SECRET=SecretStr("secret"),
        CROBOT_SLACK_API_URL="http://127.0.0.1:9/api/",
        CROBOT_OUTBOX_LEASE_SECONDS=7.5,
        CROBOT_OUTBOX_SWEEP_SECONDS=3.0,
    )
    runtime, app = build(settings)
    lease = timedelta(seconds=7.5)
    assert runtime.outbox_lease == lease
    (kick,) = runtime.approval_listeners
    outbox = getattr(kick, "__self__", None)
    assert isinstance(outbox, ApprovalOutbox) and outbox.delivery.lease == lease
    sched = DigestScheduler(settings, runtime, app.client)
    assert sched.delivery.lease == lease
    sched.start()
    try:
        assert sched.job("outbox").trigger.interval == timedelta(seconds=3)
    finally:
        sched.shutdown()
        runtime.db.dispose()
