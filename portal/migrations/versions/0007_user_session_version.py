"""users: session version (a password change ends other sessions) and forced password change

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (no batch copy of `users`, which other tables' foreign keys point to).
    op.add_column(
        'users', sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
    )
    op.add_column(
        'users',
        sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade():
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of `users` would have to
    # drop a table that other tables' foreign keys point to.
    op.execute('ALTER TABLE users DROP COLUMN must_change_password')
    op.execute('ALTER TABLE users DROP COLUMN session_version')
