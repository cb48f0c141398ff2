"""quality tolerance limits and their breaches

- `qtl_limits`: a study's quality tolerance limit on one KPI (trial level, or one
  organisation's), `max` or `min` by the KPI's direction, an optional warning threshold,
  the rationale, and whether it is in force.
- `qtl_breaches`: an approved value beyond a limit (one per study, KPI, organisation and
  period), its evaluation (systemic, root cause, impact, action needed, remedial actions
  and the action items they made) and its closure, with the closer's signature manifest.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 16:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def upgrade() -> None:
    op.create_table(
        'qtl_limits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('kpi_id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=True),
        sa.Column('bound', _enum(('max', 'min'), 'qtl_bound'), nullable=False),
        sa.Column('limit_value', sa.Float(), nullable=False),
        sa.Column('warn_value', sa.Float(), nullable=True),
        sa.Column('rationale', sa.String(length=500), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['kpi_id'], ['kpi_definitions.id']),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_qtl_limits_study_kpi', 'qtl_limits', ['study_id', 'kpi_id'], unique=False)
    op.create_table(
        'qtl_breaches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('limit_id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('kpi_id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_label', sa.String(length=12), nullable=False),
        sa.Column('observed', sa.Float(), nullable=False),
        sa.Column('bound', _enum(('max', 'min'), 'qtl_breach_bound'), nullable=False),
        sa.Column('limit_value', sa.Float(), nullable=False),
        sa.Column('kpi_update_id', sa.Integer(), nullable=False),
        sa.Column('submitted_by', sa.String(length=32), nullable=False),
        sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('evaluation_due', sa.Date(), nullable=False),
        sa.Column('owner_team_id', sa.String(length=32), nullable=True),
        sa.Column('owner_user_id', sa.String(length=32), nullable=True),
        sa.Column('systemic', sa.Boolean(), nullable=True),
        sa.Column('root_cause', sa.Text(), nullable=True),
        sa.Column('impact', sa.Text(), nullable=True),
        sa.Column('action_needed', sa.Boolean(), nullable=True),
        sa.Column('remedial', sa.Text(), nullable=True),
        sa.Column('action_ids', sa.JSON(), nullable=True),
        sa.Column('status', _enum(('open', 'closed'), 'qtl_breach_status'), nullable=False),
        sa.Column('closed_by', sa.String(length=32), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('signer_name', sa.String(length=120), nullable=True),
        sa.Column('signer_tz', sa.String(length=64), nullable=True),
        sa.Column('signature_method', sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(['kpi_id'], ['kpi_definitions.id']),
        sa.ForeignKeyConstraint(['kpi_update_id'], ['kpi_updates.id']),
        sa.ForeignKeyConstraint(['limit_id'], ['qtl_limits.id']),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_id', 'kpi_id', 'org_id', 'period_start', name='uq_qtl_breach'),
    )
    op.create_index(
        'ix_qtl_breaches_study_status', 'qtl_breaches', ['study_id', 'status'], unique=False
    )


def downgrade() -> None:
    op.execute("DELETE FROM digest_runs WHERE target LIKE 'qtl:%' OR target LIKE 'qtlwarn:%'")
    op.drop_index('ix_qtl_breaches_study_status', table_name='qtl_breaches')
    op.drop_table('qtl_breaches')
    op.drop_index('ix_qtl_limits_study_kpi', table_name='qtl_limits')
    op.drop_table('qtl_limits')
