"""The audit trail holds against its own database: append-only by trigger, keyed by a
key the database does not hold, verified only with that key, and keys can rotate."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from crobot.bot.cli import main
from crobot.services import audit, directory
from crobot.services.actor import SYSTEM
from crobot.services.audit_keys import KEY_FILE_SUFFIX, AuditKeyMissing
from crobot.storage.db import Database, normalise_url
from crobot.storage.migrate import alembic_config, upgrade
from crobot.storage.models import AuditEvent, utcnow
from tests.conftest import PG_URL, TEST_AUDIT_KEY, World

REFUSED = [
    "UPDATE audit_events SET actor = 'T1:UFORGER' WHERE seq = 3",
    "UPDATE audit_events SET hash = prev_hash",
    "DELETE FROM audit_events WHERE seq = 14",
    "DELETE FROM audit_events",
    "DELETE FROM audit_head",
    "UPDATE audit_head SET seq = seq - 1",
    "UPDATE audit_head SET hash = 'ff'",
    "UPDATE audit_head SET keyed_from = 99",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_database_refuses_to_change_or_delete_audit_rows(world: World, statement: str) -> None:
    with world.db.read() as s:
        before = s.execute(select(AuditEvent.seq, AuditEvent.hash)).all()
    with pytest.raises(DBAPIError) as caught, world.db.write() as s:
        s.execute(text(statement))
    assert "append-only" in str(caught.value) or "audit_head" in str(caught.value)
    with world.db.read() as s:
        assert s.execute(select(AuditEvent.seq, AuditEvent.hash)).all() == before
        assert audit.verify(s).ok


def test_truncate_is_refused_on_postgresql(world: World) -> None:
    if world.db.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE; DELETE without WHERE is refused above")
    for table in ("audit_events", "audit_head", "audit_anchors"):
        with pytest.raises(DBAPIError, match="append-only"), world.db.write() as s:
            s.execute(text(f"TRUNCATE {table} CASCADE"))


def test_verify_without_the_key_cannot_verify(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CROBOT_AUDIT_KEY")
    monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
    assert main(["audit", "verify"]) == 2
    out = capsys.readouterr().out
    assert "CANNOT VERIFY" in out and "OK" not in out


def test_a_wrong_key_is_a_broken_chain_and_rotation_keeps_old_events_verifiable(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    new = "k2:" + base64.b64encode(os.urandom(32)).decode()
    # Rotation: the old key stays listed to verify what it signed; the last one signs.
    monkeypatch.setenv("CROBOT_AUDIT_KEY", f"{TEST_AUDIT_KEY},{new}")
    assert main(["org", "add", "Rotated Labs", "--kind", "lab"]) == 0
    assert main(["audit", "verify"]) == 0
    with world.db.read() as s:
        ids = s.scalars(select(AuditEvent.key_id).order_by(AuditEvent.seq)).all()
    assert ids[:-1] == ["test"] * (len(ids) - 1) and ids[-1] == "k2"
    capsys.readouterr()
    monkeypatch.setenv("CROBOT_AUDIT_KEY", new)  # the old key forgotten
    assert main(["audit", "verify"]) == 2
    assert "key 'test'" in capsys.readouterr().out
    # Same id, other bytes: that is a chain that does not match, not a missing key.
    monkeypatch.setenv("CROBOT_AUDIT_KEY", "test:" + base64.b64encode(os.urandom(32)).decode())
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at event seq 1" in capsys.readouterr().out


def test_sqlite_makes_a_private_key_file_beside_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's two commands need no setup; without the file, verify cannot verify."""
    monkeypatch.delenv("CROBOT_AUDIT_KEY")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("CROBOT_DATABASE_URL", raising=False)
    assert main(["demo"]) == 0
    key_file = tmp_path / ("crobot.db" + KEY_FILE_SUFFIX)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    key_file.rename(tmp_path / "elsewhere")
    assert main(["audit", "verify"]) == 2
    assert "CANNOT VERIFY" in capsys.readouterr().out
    assert not key_file.exists()  # verifying never makes a key


def test_postgresql_without_a_key_refuses_to_write(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    if world.db.is_sqlite:
        pytest.skip("SQLite falls back to a key file beside the database")
    monkeypatch.delenv("CROBOT_AUDIT_KEY")
    db = Database(world.db.url)
    try:
        with pytest.raises(AuditKeyMissing, match="CROBOT_AUDIT_KEY"), db.write() as s:
            directory.add_org(s, SYSTEM, name="Keyless", kind="lab")
        with db.read() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == 14
    finally:
        db.dispose()


def test_events_before_the_cut_over_stay_sha256_and_migrations_go_down_and_up(
    tmp_path: Path,
) -> None:
    """A database with a plain SHA-256 chain (revision 0007) upgrades: its events verify
    as they are, new events are keyed from the recorded cut-over, and 0008 downgrades."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0007")
    engine = create_engine(url)
    with engine.begin() as conn:
        prev = audit.GENESIS
        for seq in (1, 2):
            ev = AuditEvent(
                seq=seq,
                at=utcnow(),
                actor="cli:old",
                action="org.create",
                subject_type="organization",
                subject_id=str(seq),
                study_id=None,
                before=None,
                after={"name": f"Old {seq}"},
                prev_hash=prev,
            )
            # As revision 0007's code hashed it: SHA-256 of this JSON, nothing else.
            prev = hashlib.sha256(
                json.dumps(
                    {
                        "prev": ev.prev_hash,
                        "seq": seq,
                        "at": ev.at.isoformat(),
                        "actor": "cli:old",
                        "action": "org.create",
                        "subject_type": "organization",
                        "subject_id": str(seq),
                        "study_id": None,
                        "before": None,
                        "after": {"name": f"Old {seq}"},
                    },
                    sort_keys=True,
                    separators=(",", ":"),
                    ensure_ascii=True,
                ).encode()
            ).hexdigest()
            assert prev == audit.legacy_hash(ev)
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, at, actor, action, subject_type, "
                    "subject_id, after, prev_hash, hash) VALUES (:seq, :at, 'cli:old', "
                    "'org.create', 'organization', :sid, :after, :prev, :hash)"
                ),
                {
                    "seq": seq,
                    "at": ev.at.replace(tzinfo=None),
                    "sid": str(seq),
                    "after": f'{{"name": "Old {seq}"}}',
                    "prev": ev.prev_hash,
                    "hash": prev,
                },
            )
        conn.execute(text("UPDATE audit_head SET seq = 2, hash = :h"), {"h": prev})
    engine.dispose()
    upgrade(url)
    db = Database(url)
    try:
        with db.write() as s:
            directory.add_org(s, SYSTEM, name="New Org", kind="lab")
        with db.read() as s:
            result = audit.verify(s)
            keys = s.scalars(select(AuditEvent.key_id).order_by(AuditEvent.seq)).all()
        assert result.ok and result.checked == 3 and result.legacy == 2, result.describe()
        assert keys == [None, None, "test"]
        # A rewrite that passes the keyed event off as a legacy one is still refused.
        with db.write() as s:
            s.execute(text("DROP TRIGGER audit_events_no_update"))
            s.execute(text("UPDATE audit_events SET key_id = NULL WHERE seq = 3"))
        with db.read() as s:
            assert not audit.verify(s).ok
    finally:
        db.dispose()
    command.downgrade(alembic_config(url), "0007")
    command.upgrade(alembic_config(url), "head")


@pytest.mark.skipif(not PG_URL, reason="needs CROBOT_TEST_DATABASE_URL")
def test_postgresql_migrations_go_down_past_the_triggers_and_up_again() -> None:
    """In a schema of its own, so the session's migrated database stays as it is."""
    assert PG_URL is not None
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS mig_check CASCADE"))
        conn.execute(text("CREATE SCHEMA mig_check"))
    url = make_url(normalise_url(PG_URL)).update_query_dict({"options": "-csearch_path=mig_check"})
    cfg = alembic_config(url.render_as_string(hide_password=False))
    try:
        command.upgrade(cfg, "head")
        command.downgrade(cfg, "0007")
        command.upgrade(cfg, "head")
        with admin.connect() as conn:
            names = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'mig_check' AND NOT t.tgisinternal"
                )
            ).scalars()
            assert "audit_events_append_only" in set(names)
    finally:
        with admin.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS mig_check CASCADE"))
        admin.dispose()


README_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_anchors FROM {role};
REVOKE DELETE, TRUNCATE ON audit_head FROM {role};
"""


@pytest.mark.skipif(not PG_URL, reason="needs CROBOT_TEST_DATABASE_URL")
def test_the_readme_grants_let_the_app_write_and_not_rewrite() -> None:
    """README's grants, on a role that owns nothing, in a schema of its own."""
    assert PG_URL is not None
    schema, role = "grants_check", "crobot_grants_check"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(text(f"CREATE ROLE {role}"))
    base = make_url(normalise_url(PG_URL))
    owner = base.update_query_dict({"options": f"-csearch_path={schema}"})
    app = base.update_query_dict({"options": f"-csearch_path={schema} -crole={role}"})
    db = Database(app.render_as_string(hide_password=False))
    try:
        upgrade(owner.render_as_string(hide_password=False))
        with admin.connect() as conn:
            conn.execute(text(f"SET search_path = {schema}"))
            for statement in README_GRANTS.format(schema=schema, role=role).split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        with db.write() as s:
            directory.add_org(s, SYSTEM, name="Granted Labs", kind="lab")
            directory.add_org(s, SYSTEM, name="Granted Labs 2", kind="lab")
        with db.read() as s:
            assert audit.verify(s).ok
        for statement in (
            "UPDATE audit_events SET actor = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DELETE FROM audit_head",
            "ALTER TABLE audit_events DISABLE TRIGGER ALL",
            "DROP TRIGGER audit_events_append_only ON audit_events",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                with db.write() as s:
                    s.execute(text(statement))
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
