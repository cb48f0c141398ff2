"""studies.four_eyes; plausible upper bounds for the shipped KPI definitions; the KPI
period indexes cover approval_state

- `studies.four_eyes` (default false): when set, even a sponsor approver's own KPI values
  and milestone completions wait, and the submitter cannot decide them
  (services/permissions.py).
- The shipped KPIs had a lower bound but, except percentages and scores, no upper one, so
  1e308 days of query aging was stored. Definitions seeded before this revision get the
  upper bounds services/kpi_catalog.py now ships (where they have none); min_value and
  integer were already right. The bounds are frozen here: a migration must not change
  with the code.
- A KPI's current value is now its newest value that was not rejected
  (services/kpis.py). The two covering indexes of 0002 gain approval_state as their last
  column, so finding current values stays an index-only read.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28 10:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPPER_BOUNDS = {
    'enrollment': 100_000,
    'site_activation': 10_000,
    'query_aging': 3650,
    'protocol_deviations': 100_000,
    'cost_of_quality': 1_000_000,
    'data_entry_timeliness': 3650,
}

_kpis = sa.table(
    'kpi_definitions',
    sa.column('key', sa.String),
    sa.column('max_value', sa.Float),
)


SERIES = ['study_id', 'kpi_id', 'period_start', 'org_id', 'id']
STUDY_PERIOD = ['study_id', 'period_start', 'kpi_id', 'org_id', 'id']


def _period_indexes(extra: list[str]) -> None:
    with op.batch_alter_table('kpi_updates') as batch:
        batch.drop_index('ix_kpi_updates_series')
        batch.drop_index('ix_kpi_updates_study_period_cover')
        batch.create_index('ix_kpi_updates_series', SERIES + extra, unique=False)
        batch.create_index('ix_kpi_updates_study_period_cover', STUDY_PERIOD + extra, unique=False)


def upgrade() -> None:
    with op.batch_alter_table('studies') as batch:
        batch.add_column(
            sa.Column('four_eyes', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _period_indexes(['approval_state'])
    for key, bound in UPPER_BOUNDS.items():
        op.execute(
            _kpis.update()
            .where(_kpis.c.key == key, _kpis.c.max_value.is_(None))
            .values(max_value=bound)
        )


def downgrade() -> None:
    _period_indexes([])
    for key, bound in UPPER_BOUNDS.items():
        op.execute(
            _kpis.update()
            .where(_kpis.c.key == key, _kpis.c.max_value == bound)
            .values(max_value=None)
        )
    with op.batch_alter_table('studies') as batch:
        batch.drop_column('four_eyes')
