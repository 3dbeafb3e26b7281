"""users.account_source: where an account's password is checked (local, or the campus directory);
users.directory_checked_at: when the directory last accepted it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'users',
        sa.Column('account_source', sa.String(10), server_default='local', nullable=False),
    )
    op.add_column(
        'users',
        sa.Column('directory_checked_at', sa.DateTime(), server_default=sa.text('NULL'), nullable=True),
    )


def downgrade():
    op.execute('ALTER TABLE users DROP COLUMN directory_checked_at')
    op.execute('ALTER TABLE users DROP COLUMN account_source')
