"""registrations: covering index for the admin dashboard's grade distribution

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 19:30:21.927987

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_registrations_section_status_grade',
        'registrations',
        ['section_id', 'status', 'final_grade'],
        unique=False,
    )


def downgrade():
    op.drop_index('ix_registrations_section_status_grade', table_name='registrations')
