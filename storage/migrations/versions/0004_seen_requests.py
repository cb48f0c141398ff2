"""seen_requests: signatures of accepted Slack requests (replay protection)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'seen_requests',
        sa.Column('signature', sa.String(length=80), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('signature'),
    )
    op.create_index('ix_seen_requests_seen_at', 'seen_requests', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_seen_requests_seen_at', table_name='seen_requests')
    op.drop_table('seen_requests')
