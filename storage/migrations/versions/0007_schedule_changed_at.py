"""channel_links.schedule_changed_at: when a digest schedule last changed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 13:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('channel_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_changed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('channel_links', schema=None) as batch_op:
        batch_op.drop_column('schedule_changed_at')
