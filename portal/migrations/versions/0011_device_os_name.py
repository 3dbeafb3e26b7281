"""sync_devices.os_name: the operating system a desktop copy reported when it enrolled

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_devices', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('os_name', sa.String(length=100), nullable=False, server_default='')
        )


def downgrade():
    with op.batch_alter_table('sync_devices', schema=None) as batch_op:
        batch_op.drop_column('os_name')
