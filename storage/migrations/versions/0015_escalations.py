"""escalation of overdue actions: lead roles, a per-study threshold, when it happened

- people.role gains `sponsor_lead` and `vendor_lead` (an organisation's lead, told when
  one of its people's actions is overdue by the study's threshold).
- studies.escalate_after_days (default 3 working days; 0 turns escalation off).
- action_items.escalated_at: set once by compare-and-set, so an action is escalated once
  whichever replica sees it first.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 19:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ('sponsor_approver', 'sponsor_member', 'vendor_member', 'admin')
NEW_ROLES = (*OLD_ROLES, 'sponsor_lead', 'vendor_lead')


def _roles(values: Sequence[str]) -> None:
    """The CHECK of people.role (named `person_role` on both backends); SQLite rebuilds."""
    quoted = ', '.join(f"'{v}'" for v in values)
    with op.batch_alter_table('people') as batch:
        batch.drop_constraint('person_role', type_='check')
        batch.create_check_constraint('person_role', f'role IN ({quoted})')


def upgrade() -> None:
    _roles(NEW_ROLES)
    with op.batch_alter_table('studies') as batch:
        batch.add_column(
            sa.Column('escalate_after_days', sa.Integer(), server_default='3', nullable=False)
        )
    with op.batch_alter_table('action_items') as batch:
        batch.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('action_items') as batch:
        batch.drop_column('escalated_at')
    with op.batch_alter_table('studies') as batch:
        batch.drop_column('escalate_after_days')
    op.execute(
        "UPDATE people SET role = CASE role WHEN 'sponsor_lead' THEN 'sponsor_member' "
        "ELSE 'vendor_member' END WHERE role IN ('sponsor_lead', 'vendor_lead')"
    )
    _roles(OLD_ROLES)
