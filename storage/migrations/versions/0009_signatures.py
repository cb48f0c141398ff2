"""Approvals as electronic signatures: Part 11 mode per study, signed decisions, PINs

- `studies.signatures` ('acknowledge' | 'part11', default 'acknowledge'): in Part 11 mode a
  decision needs the approver's signing PIN as well as their Slack identity.
- `approvals.signer_name`, `signer_tz`, `signature_method`, `content_hash`,
  `signature_hash`: who signed (printed name and zone at signing), how, the SHA-256 of
  exactly what was decided and of that bound to the signer, time and meaning
  (services/signatures.py). Decisions made before this revision have none.
- `signing_pins`: each person's PIN as a salted scrypt hash, wrong attempts and lock.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-27 15:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPROVAL_COLUMNS = [
    ('signer_name', 120),
    ('signer_tz', 64),
    ('signature_method', 20),
    ('content_hash', 64),
    ('signature_hash', 64),
]


def upgrade() -> None:
    with op.batch_alter_table('studies') as batch:
        batch.add_column(
            sa.Column(
                'signatures',
                sa.Enum(
                    'acknowledge',
                    'part11',
                    name='signature_mode',
                    native_enum=False,
                    create_constraint=True,
                    length=20,
                ),
                server_default='acknowledge',
                nullable=False,
            )
        )
    with op.batch_alter_table('approvals') as batch:
        for name, length in APPROVAL_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    op.create_table(
        'signing_pins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('pin_hash', sa.String(length=200), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('team_id', 'user_id', name='uq_signing_pin'),
    )


def downgrade() -> None:
    op.drop_table('signing_pins')
    with op.batch_alter_table('approvals') as batch:
        for name, _ in reversed(APPROVAL_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table('studies') as batch:
        # The enum's CHECK goes first: SQLite's table copy would otherwise keep a check on
        # a column it no longer has.
        batch.drop_constraint('signature_mode', type_='check')
        batch.drop_column('signatures')
