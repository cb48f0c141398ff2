"""audit trail: keyed chain columns, anchors, and triggers making it append-only

audit_events gains key_id (the HMAC key; NULL for the plain SHA-256 events written
before this revision) and operator; audit_head gains keyed_from, the cut-over (its seq +
1 now); audit_anchors records where each anchor was posted in Slack.

Triggers, on SQLite and PostgreSQL: audit_events and audit_anchors reject UPDATE and
DELETE (and TRUNCATE on PostgreSQL); audit_head cannot be deleted or truncated, and an
UPDATE may only move it forward (seq never decreases, keyed_from never changes, a new
hash must be the hash of the event at its seq).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 15:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ('audit_events', 'audit_anchors')

SQLITE_TRIGGERS = [
    *(
        f"""CREATE TRIGGER {table}_no_{op_name} BEFORE {op_name.upper()} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op_name.upper()} refused'); END"""
        for table in APPEND_ONLY
        for op_name in ('update', 'delete')
    ),
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END""",
    """CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    WHEN NEW.id != OLD.id OR NEW.seq < OLD.seq OR NEW.keyed_from != OLD.keyed_from
      OR (NEW.hash != OLD.hash
          AND NEW.hash IS NOT (SELECT hash FROM audit_events WHERE seq = NEW.seq))
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward, to an existing event'); END""",
]
SQLITE_TRIGGER_NAMES = [
    *(f'{t}_no_{o}' for t in APPEND_ONLY for o in ('update', 'delete')),
    'audit_head_no_delete',
    'audit_head_forward',
]

PG_FUNCTIONS = [
    """CREATE FUNCTION crobot_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE FUNCTION crobot_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id <> OLD.id OR NEW.seq < OLD.seq OR NEW.keyed_from <> OLD.keyed_from
         OR (NEW.hash <> OLD.hash AND NEW.hash IS DISTINCT FROM
             (SELECT e.hash FROM audit_events e WHERE e.seq = NEW.seq)) THEN
        RAISE EXCEPTION 'audit_head only moves forward, to an existing event'
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$""",
]
PG_TRIGGERS = [
    *(
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION crobot_audit_append_only()"""
        for table in APPEND_ONLY
    ),
    *(
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION crobot_audit_append_only()"""
        for table in (*APPEND_ONLY, 'audit_head')
    ),
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION crobot_audit_append_only()""",
    """CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION crobot_audit_head_forward()""",
]
PG_TRIGGER_NAMES = [
    *((f'{t}_append_only', t) for t in APPEND_ONLY),
    *((f'{t}_no_truncate', t) for t in (*APPEND_ONLY, 'audit_head')),
    ('audit_head_no_delete', 'audit_head'),
    ('audit_head_forward', 'audit_head'),
]


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('operator', sa.String(length=120), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('keyed_from', sa.Integer(), server_default=sa.text('1'), nullable=False)
        )
    # Events written so far stay plain SHA-256; the next one is the first keyed one.
    op.execute('UPDATE audit_head SET keyed_from = seq + 1')
    op.create_table(
        'audit_anchors',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('channel_id', sa.String(length=32), nullable=False),
        sa.Column('slack_ts', sa.String(length=32), nullable=False),
        sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_id', 'day', name='uq_audit_anchor_day'),
    )
    if op.get_bind().dialect.name == 'sqlite':
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in PG_FUNCTIONS + PG_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
    else:
        for name, table in PG_TRIGGER_NAMES:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON {table}')
        op.execute('DROP FUNCTION IF EXISTS crobot_audit_head_forward()')
        op.execute('DROP FUNCTION IF EXISTS crobot_audit_append_only()')
    op.drop_table('audit_anchors')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('keyed_from')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('operator')
        batch_op.drop_column('key_id')
