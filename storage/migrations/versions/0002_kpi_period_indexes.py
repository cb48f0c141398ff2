"""kpi_updates indexes that serve period ranges (benchmark finding)

`kpi show`/`kpi trend` ask for one study and KPI since a date; status and digests ask for
one study since a date across KPIs. In 0001, ix_kpi_updates_lookup puts org_id before
period_start and ix_kpi_updates_study_period leaves kpi/org out, so on 1M rows those
queries read every row of the study+KPI (2k) or of the study (20k, via the lookup index)
instead of the last weeks (benchmarks/RESULTS.md):

- ix_kpi_updates_series (study_id, kpi_id, period_start, org_id, id): period ranges per
  study and KPI (services.kpis.series).
- ix_kpi_updates_study_period_cover (study_id, period_start, kpi_id, org_id, id)
  replaces ix_kpi_updates_study_period: the GROUP BY of latest_per_kpi reads only it.

ix_kpi_updates_lookup stays (latest_row's exact lookup; tests/test_migrations.py names it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:05:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('kpi_updates', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_updates_study_period')
        batch_op.create_index(
            'ix_kpi_updates_series',
            ['study_id', 'kpi_id', 'period_start', 'org_id', 'id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_kpi_updates_study_period_cover',
            ['study_id', 'period_start', 'kpi_id', 'org_id', 'id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('kpi_updates', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_updates_study_period_cover')
        batch_op.drop_index('ix_kpi_updates_series')
        batch_op.create_index(
            'ix_kpi_updates_study_period', ['study_id', 'period_start'], unique=False
        )
