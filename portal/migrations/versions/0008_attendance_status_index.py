"""attendance_records: covering index for the admin dashboard's attendance rates

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_attendance_records_lab_session_status',
        'attendance_records',
        ['lab_session_id', 'status'],
        unique=False,
    )


def downgrade():
    op.drop_index('ix_attendance_records_lab_session_status', table_name='attendance_records')
