"""people.country and channel_links.country: whose public holidays apply

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 17:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('people', 'channel_links'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))


def downgrade() -> None:
    for table in ('channel_links', 'people'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('country')
