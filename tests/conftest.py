"""Shared fixtures: a migrated database per backend, a sample study world, fake Slack.

Every DB test runs on SQLite and, when CROBOT_TEST_DATABASE_URL is set, on PostgreSQL.
Databases are migrated once per session with Alembic (never create_all) and emptied
between tests, so end-to-end tests whose server commits in other threads or processes
see the same data the test sees.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from crobot.services import directory
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.kpi_catalog import seed_definitions
from crobot.storage.db import Database, normalise_url
from crobot.storage.migrate import upgrade
from crobot.storage.models import Base
from tests.dbstate import owner_session
from tests.fake_slack import FakeSlack

if TYPE_CHECKING:
    from tests.slash_helpers import SlashClient

PG_URL = os.environ.get("CROBOT_TEST_DATABASE_URL")
# The audit chain's HMAC key for every test database, and for the servers and CLI runs the
# tests start (PostgreSQL has no default key). Tests of the key file unset it.
TEST_AUDIT_KEY = "test:" + base64.b64encode(b"crobot-test-audit-key-32-bytes!!").decode()
os.environ["CROBOT_AUDIT_KEY"] = TEST_AUDIT_KEY
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
TODAY = date(2026, 11, 25)  # a Wednesday


def _reset_postgres(url: str) -> None:
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    urls = {}
    path = Path(tmp_path_factory.mktemp("db")) / "crobot-test.db"
    urls["sqlite"] = f"sqlite:///{path}"
    upgrade(urls["sqlite"])
    if PG_URL:
        _reset_postgres(PG_URL)
        upgrade(PG_URL)
        urls["postgres"] = normalise_url(PG_URL)
    return urls


def empty_database(db: Database) -> None:
    """A fresh start for the next test. The audit tables refuse DELETE (migration 0008),
    so this empties them as only the database's owner can (`owner_session`)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with owner_session(db) as s:
        if db.is_sqlite:
            for name in tables:
                s.execute(text(f"DELETE FROM {name}"))
        else:
            s.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        s.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
        seed_definitions(s)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, migrated_urls: dict[str, str]) -> Iterator[Database]:
    database = Database(migrated_urls[request.param])
    empty_database(database)
    yield database
    database.dispose()


@pytest.fixture
def cli_env(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """`crobot` CLI commands (`bot.cli.main`) in this test use the test's database."""
    monkeypatch.setenv("CROBOT_DATABASE_URL", db.url)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    return db


@pytest.fixture
def sqlite_db(migrated_urls: dict[str, str]) -> Iterator[Database]:
    database = Database(migrated_urls["sqlite"])
    empty_database(database)
    yield database
    database.dispose()


@dataclass
class World:
    """ONC-301: sponsor Helix Pharma, vendors Apex CRO and CentraLab; four channels."""

    db: Database
    study_id: int
    sponsor_id: int
    apex_id: int
    lab_id: int

    def actor(self, user_id: str, team_id: str = "T1") -> Actor:
        with self.db.read() as s:
            return resolve_actor(s, team_id, user_id)

    def add_person(
        self,
        team_id: str,
        user_id: str,
        org: str,
        role: str,
        *,
        name: str | None = None,
        timezone: str | None = None,
    ) -> None:
        """Register one more person."""
        with self.db.write() as s:
            directory.add_person(
                s,
                SYSTEM,
                team_id=team_id,
                user_id=user_id,
                display_name=name or user_id,
                org=org,
                role=role,
                timezone=timezone,
            )


APPROVER, SPONSOR, APEX_PM, LAB_PM, STRANGER = "UAPPROVER", "USPONSOR", "UAPEX", "ULAB", "USTRANGE"
C_SPONSOR, C_APEX, C_LAB, C_JOINT = "CSPONSOR", "CAPEX", "CLAB", "CJOINT"


def build_world(db: Database) -> World:
    with db.write() as s:
        sp = directory.add_org(s, SYSTEM, name="Helix Pharma", kind="sponsor")
        apex = directory.add_org(s, SYSTEM, name="Apex CRO", kind="cro")
        lab = directory.add_org(s, SYSTEM, name="CentraLab", kind="lab")
        study = directory.add_study(
            s, SYSTEM, code="ONC-301", title="Phase 3 oncology", sponsor="Helix Pharma", phase="3"
        )
        directory.add_study_vendor(
            s, SYSTEM, study="ONC-301", vendor="Apex CRO", scope="monitoring"
        )
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor="CentraLab", scope="lab")
        people = [
            (APPROVER, "Ann Approver", "Helix Pharma", "sponsor_approver", "America/New_York"),
            (SPONSOR, "Sam Sponsor", "Helix Pharma", "sponsor_member", "America/New_York"),
            (APEX_PM, "Priya Apex", "Apex CRO", "vendor_member", "Asia/Kolkata"),
            (LAB_PM, "Liam Lab", "CentraLab", "vendor_member", "Europe/Dublin"),
        ]
        for uid, name, org, role, tz in people:
            directory.add_person(
                s,
                SYSTEM,
                team_id="T1",
                user_id=uid,
                display_name=name,
                org=org,
                role=role,
                timezone=tz,
            )
        for channel, audience, tz in [
            (C_SPONSOR, "sponsor", "America/New_York"),
            (C_APEX, "vendor:Apex CRO", "Asia/Kolkata"),
            (C_LAB, "vendor:CentraLab", "Europe/Dublin"),
            (C_JOINT, "joint", "Europe/Berlin"),
        ]:
            directory.link_channel(
                s,
                SYSTEM,
                team_id="T1",
                channel_id=channel,
                study="ONC-301",
                audience=audience,
                timezone=tz,
            )
        return World(db, study.id, sp.id, apex.id, lab.id)


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db)


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> FakeSlack:
    fake_slack_server.reset()
    return fake_slack_server


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    """The bot behind real HTTP, answering `/cro` as `SlashClient.send` sends it."""
    from tests.slash_helpers import slash_bot  # it imports this module

    with slash_bot(world.db, fake_slack) as client:
        yield client


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heavy reliability variants run only when asked for (`pytest -m heavy`)."""
    if "heavy" in str(config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="heavy variant: run with -m heavy")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
