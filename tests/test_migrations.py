"""Models and Alembic migrations describe the same schema, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from crobot.storage.db import Database
from crobot.storage.migrate import current_head
from crobot.storage.models import Base


def test_migrations_match_models(db: Database) -> None:
    engine = create_engine(db.url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
    assert version == current_head()


def test_kpi_lookup_index_exists(db: Database) -> None:
    engine = create_engine(db.url)
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("kpi_updates")}
    engine.dispose()
    assert indexes["ix_kpi_updates_lookup"] == [
        "study_id",
        "kpi_id",
        "org_id",
        "period_start",
        "id",
    ]
