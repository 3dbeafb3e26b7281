"""sync_state: whether the snapshot under way began on a device that held nothing

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'sync_state',
        sa.Column('pull_fresh', sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade():
    op.execute('ALTER TABLE sync_state DROP COLUMN pull_fresh')
