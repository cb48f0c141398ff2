"""sites, site enrolment reports, study enrolment targets, enrolment milestones

- `sites`: a study's sites (code, name, ISO 3166 country, managing organisation,
  planned / actual activation, closing, status planned | active | closed).
- `site_reports`: patients a site enrolled in one period; corrections are new rows and a
  vendor's report waits for approval like a KPI value (approval subject `site_report`).
- `studies.enrolment_target`: what `crobot forecast` forecasts by default.
- `milestones.target_count` (patients enrolled by the planned date), `risk_reason` (why
  the enrolment forecast marked it at risk) and `status_pinned` (set by the sponsor by
  hand: the forecast leaves it alone).

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-27 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SUBJECTS = ('kpi_update', 'milestone')
NEW_SUBJECTS = (*OLD_SUBJECTS, 'site_report')
STATES = ('pending', 'approved', 'rejected')


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def _subject_types(values: Sequence[str]) -> None:
    """The CHECK of approvals.subject_type (named `subject_type` on both backends); on
    SQLite, which cannot alter a CHECK, the table is rebuilt."""
    quoted = ', '.join(f"'{v}'" for v in values)
    with op.batch_alter_table('approvals') as batch:
        batch.drop_constraint('subject_type', type_='check')
        batch.create_check_constraint('subject_type', f'subject_type IN ({quoted})')


def upgrade() -> None:
    op.create_table(
        'sites',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('planned_activation', sa.Date(), nullable=True),
        sa.Column('activated_on', sa.Date(), nullable=True),
        sa.Column('closed_on', sa.Date(), nullable=True),
        sa.Column('status', _enum(('planned', 'active', 'closed'), 'site_status'), nullable=False),
        sa.Column('created_by', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_id', 'code', name='uq_site_code'),
    )
    op.create_index('ix_sites_study_org', 'sites', ['study_id', 'org_id'], unique=False)
    op.create_table(
        'site_reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_label', sa.String(length=12), nullable=False),
        sa.Column('enrolled', sa.Integer(), nullable=False),
        sa.Column('submitted_by', sa.String(length=32), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('approval_state', _enum(STATES, 'site_report_state'), nullable=False),
        sa.Column('supersedes_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['org_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.ForeignKeyConstraint(['supersedes_id'], ['site_reports.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_site_reports_site_period', 'site_reports', ['site_id', 'period_start', 'id'], unique=False
    )
    op.create_index('ix_site_reports_study_id', 'site_reports', ['study_id'], unique=False)
    with op.batch_alter_table('studies') as batch:
        batch.add_column(sa.Column('enrolment_target', sa.Integer(), nullable=True))
    with op.batch_alter_table('milestones') as batch:
        batch.add_column(sa.Column('target_count', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('risk_reason', sa.String(length=300), nullable=True))
        batch.add_column(
            sa.Column('status_pinned', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _subject_types(NEW_SUBJECTS)


def downgrade() -> None:
    op.execute("DELETE FROM approvals WHERE subject_type = 'site_report'")
    _subject_types(OLD_SUBJECTS)
    with op.batch_alter_table('milestones') as batch:
        batch.drop_column('status_pinned')
        batch.drop_column('risk_reason')
        batch.drop_column('target_count')
    with op.batch_alter_table('studies') as batch:
        batch.drop_column('enrolment_target')
    op.drop_index('ix_site_reports_study_id', table_name='site_reports')
    op.drop_index('ix_site_reports_site_period', table_name='site_reports')
    op.drop_table('site_reports')
    op.drop_index('ix_sites_study_org', table_name='sites')
    op.drop_table('sites')
