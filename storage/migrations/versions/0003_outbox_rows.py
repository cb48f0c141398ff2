"""digest_runs become the outbox of every exactly-once Slack message

Approval requests, decision updates and thread notices now go through the same claim
rows as digests (`approval:<id>` targets), so:

- period_key widens to 80 characters (`update:<channel>:<ts>`);
- created_at records when a row was made: a retry searches Slack's history from there,
  because claimed_at moves when a process takes a crashed row over;
- ix_digest_runs_state serves the periodic sweep for pending rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('digest_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column(
            'period_key',
            existing_type=sa.String(length=40),
            type_=sa.String(length=80),
            existing_nullable=False,
        )
        batch_op.create_index('ix_digest_runs_state', ['state'], unique=False)
    op.execute("UPDATE digest_runs SET created_at = claimed_at")
    with op.batch_alter_table('digest_runs', schema=None) as batch_op:
        batch_op.alter_column(
            'created_at', existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table('digest_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_runs_state')
        batch_op.alter_column(
            'period_key',
            existing_type=sa.String(length=80),
            type_=sa.String(length=40),
            existing_nullable=False,
        )
        batch_op.drop_column('created_at')
