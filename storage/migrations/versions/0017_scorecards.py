"""studies.kpi_report_days: the days after a period's end a KPI report counts as on time

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27 19:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kpi_report_days', sa.Integer(), server_default=sa.text('5'), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('kpi_report_days')
