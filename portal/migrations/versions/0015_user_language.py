"""users.language: the language a person chose for the portal (NULL: their browser's, else the
default_language setting)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'users',
        sa.Column('language', sa.String(8), server_default=sa.text('NULL'), nullable=True),
    )


def downgrade():
    op.execute('ALTER TABLE users DROP COLUMN language')
