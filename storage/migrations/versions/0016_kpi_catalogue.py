"""the KPI catalogue the sponsor owns: kinds, retirement, per-study targets

- `kpi_definitions.kind` (cro | cmo | lab | any | sponsor, default any): which vendors
  report the KPI (services/permissions.py `reportable_kinds`). The ten definitions
  shipped before this revision get the kinds services/kpi_catalog.py now ships; frozen
  here, as a migration must not change with the code.
- `kpi_definitions.retired_at`: a retired KPI keeps its history and takes no new values.
- `kpi_targets`: a study's target for one KPI key, study-wide (`org_id` NULL) or for one
  organisation, overriding the catalogue's default. One row per study, key and
  organisation: a unique constraint for the organisations' rows and, because NULLs are
  distinct in unique constraints on SQLite and PostgreSQL alike, a partial unique index
  for the study-wide one.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 10:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ('cro', 'cmo', 'lab', 'any', 'sponsor')
SHIPPED_KINDS = {
    'enrollment': 'cro',
    'screen_failure_rate': 'cro',
    'site_activation': 'cro',
    'data_entry_timeliness': 'cro',
    'supplier_performance': 'sponsor',
    'customer_satisfaction': 'sponsor',
}

_kpis = sa.table(
    'kpi_definitions',
    sa.column('key', sa.String),
    sa.column('kind', sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table('kpi_definitions') as batch:
        batch.add_column(
            sa.Column(
                'kind',
                sa.Enum(
                    *KINDS, name='kpi_kind', native_enum=False, create_constraint=True, length=20
                ),
                server_default='any',
                nullable=False,
            )
        )
        batch.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
    for key, kind in SHIPPED_KINDS.items():
        op.execute(
            _kpis.update().where(_kpis.c.key == key, _kpis.c.kind == 'any').values(kind=kind)
        )
    op.create_table(
        'kpi_targets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('kpi_key', sa.String(length=40), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=True),
        sa.Column('target', sa.Float(), nullable=False),
        sa.Column('set_by', sa.String(length=80), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_id', 'kpi_key', 'org_id', name='uq_kpi_target_org'),
    )
    op.create_index(
        'uq_kpi_target_study',
        'kpi_targets',
        ['study_id', 'kpi_key'],
        unique=True,
        sqlite_where=sa.text('org_id IS NULL'),
        postgresql_where=sa.text('org_id IS NULL'),
    )


def downgrade() -> None:
    op.drop_index('uq_kpi_target_study', table_name='kpi_targets')
    op.drop_table('kpi_targets')
    with op.batch_alter_table('kpi_definitions') as batch:
        # The kind's CHECK is named after its enum: SQLite's table copy would keep it.
        batch.drop_constraint('kpi_kind', type_='check')
        batch.drop_column('retired_at')
        batch.drop_column('kind')
