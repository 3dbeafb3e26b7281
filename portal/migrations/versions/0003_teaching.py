"""teaching: assessments, marks, grade scales, attendance, submissions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:22:06.309306

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('grade_scales',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grade_scales')),
    sa.UniqueConstraint('name', name=op.f('uq_grade_scales_name'))
    )
    op.create_table('stored_files',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_stored_files_size_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files')),
    sa.UniqueConstraint('sha256', name=op.f('uq_stored_files_sha256'))
    )
    op.create_table('assessments',
    sa.Column('section_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('max_points', sa.Float(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('lab', 'assignment', 'exam')", name=op.f('ck_assessments_kind')),
    sa.CheckConstraint('max_points > 0', name=op.f('ck_assessments_max_points_positive')),
    sa.CheckConstraint('weight >= 0 AND weight <= 100', name=op.f('ck_assessments_weight_range')),
    sa.ForeignKeyConstraint(['section_id'], ['sections.id'], name=op.f('fk_assessments_section_id_sections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessments_section_id'), ['section_id'], unique=False)

    op.create_table('grade_finalisations',
    sa.Column('section_id', sa.Uuid(), nullable=False),
    sa.Column('finalised_by_id', sa.Uuid(), nullable=True),
    sa.Column('finalised_at', sa.DateTime(), nullable=False),
    sa.Column('grade_scale', sa.JSON(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['finalised_by_id'], ['users.id'], name=op.f('fk_grade_finalisations_finalised_by_id_users')),
    sa.ForeignKeyConstraint(['section_id'], ['sections.id'], name=op.f('fk_grade_finalisations_section_id_sections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grade_finalisations')),
    sa.UniqueConstraint('section_id', name=op.f('uq_grade_finalisations_section_id'))
    )
    op.create_table('lab_sessions',
    sa.Column('section_id', sa.Uuid(), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('starts_at', sa.Time(), nullable=False),
    sa.Column('ends_at', sa.Time(), nullable=False),
    sa.Column('room', sa.String(length=50), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('starts_at < ends_at', name=op.f('ck_lab_sessions_times_in_order')),
    sa.ForeignKeyConstraint(['section_id'], ['sections.id'], name=op.f('fk_lab_sessions_section_id_sections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_sessions'))
    )
    with op.batch_alter_table('lab_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lab_sessions_section_id'), ['section_id'], unique=False)

    op.create_table('attendance_records',
    sa.Column('lab_session_id', sa.Uuid(), nullable=False),
    sa.Column('student_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('recorded_by_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('present', 'late', 'absent', 'excused')", name=op.f('ck_attendance_records_status')),
    sa.ForeignKeyConstraint(['lab_session_id'], ['lab_sessions.id'], name=op.f('fk_attendance_records_lab_session_id_lab_sessions')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_attendance_records_recorded_by_id_users')),
    sa.ForeignKeyConstraint(['student_id'], ['users.id'], name=op.f('fk_attendance_records_student_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance_records')),
    sa.UniqueConstraint('lab_session_id', 'student_id', name=op.f('uq_attendance_records_lab_session_id_student_id'))
    )
    with op.batch_alter_table('attendance_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendance_records_lab_session_id'), ['lab_session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_records_student_id'), ['student_id'], unique=False)

    op.create_table('marks',
    sa.Column('assessment_id', sa.Uuid(), nullable=False),
    sa.Column('student_id', sa.Uuid(), nullable=False),
    sa.Column('points', sa.Float(), nullable=True),
    sa.Column('entered_by_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('points IS NULL OR points >= 0', name=op.f('ck_marks_points_not_negative')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_marks_assessment_id_assessments')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['users.id'], name=op.f('fk_marks_entered_by_id_users')),
    sa.ForeignKeyConstraint(['student_id'], ['users.id'], name=op.f('fk_marks_student_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_marks')),
    sa.UniqueConstraint('assessment_id', 'student_id', name=op.f('uq_marks_assessment_id_student_id'))
    )
    with op.batch_alter_table('marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_marks_assessment_id'), ['assessment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_marks_student_id'), ['student_id'], unique=False)

    op.create_table('submissions',
    sa.Column('assessment_id', sa.Uuid(), nullable=False),
    sa.Column('student_id', sa.Uuid(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_submissions_attempt_positive')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_submissions_assessment_id_assessments')),
    sa.ForeignKeyConstraint(['file_sha256'], ['stored_files.sha256'], name=op.f('fk_submissions_file_sha256_stored_files')),
    sa.ForeignKeyConstraint(['student_id'], ['users.id'], name=op.f('fk_submissions_student_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submissions')),
    sa.UniqueConstraint('assessment_id', 'student_id', 'attempt', name=op.f('uq_submissions_assessment_id_student_id_attempt'))
    )
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submissions_assessment_id'), ['assessment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_submissions_file_sha256'), ['file_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_submissions_student_id'), ['student_id'], unique=False)



def downgrade():
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submissions_student_id'))
        batch_op.drop_index(batch_op.f('ix_submissions_file_sha256'))
        batch_op.drop_index(batch_op.f('ix_submissions_assessment_id'))

    op.drop_table('submissions')
    with op.batch_alter_table('marks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_marks_student_id'))
        batch_op.drop_index(batch_op.f('ix_marks_assessment_id'))

    op.drop_table('marks')
    with op.batch_alter_table('attendance_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attendance_records_student_id'))
        batch_op.drop_index(batch_op.f('ix_attendance_records_lab_session_id'))

    op.drop_table('attendance_records')
    with op.batch_alter_table('lab_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lab_sessions_section_id'))

    op.drop_table('lab_sessions')
    op.drop_table('grade_finalisations')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assessments_section_id'))

    op.drop_table('assessments')
    op.drop_table('stored_files')
    op.drop_table('grade_scales')
