"""nudge_snoozes: an owner's overdue-action reminders paused until a date

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 17:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'nudge_snoozes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('until', sa.Date(), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('team_id', 'user_id', name='uq_nudge_snooze'),
    )


def downgrade() -> None:
    op.drop_table('nudge_snoozes')
