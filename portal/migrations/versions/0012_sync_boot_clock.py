"""sync_state: the boot clock's offset to the server's clock at the last sync

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'sync_state', sa.Column('boot_id', sa.String(64), server_default='', nullable=False)
    )
    op.add_column('sync_state', sa.Column('boot_offset_ms', sa.BigInteger(), nullable=True))


def downgrade():
    op.execute('ALTER TABLE sync_state DROP COLUMN boot_offset_ms')
    op.execute('ALTER TABLE sync_state DROP COLUMN boot_id')
