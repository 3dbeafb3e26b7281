"""section_grade_counts, lab_session_attendance_counts: counts kept by triggers for the admin
dashboard (never synced), filled from the rows already there

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# The same statements as portal.models.COUNT_TRIGGERS at this revision
# (tests/main/test_migrations.py checks that the two make the same triggers).
SQLITE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS section_grade_counts_insert
AFTER INSERT ON registrations
WHEN NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL
BEGIN
    INSERT INTO section_grade_counts (section_id, final_grade, registrations)
    VALUES (NEW.section_id, NEW.final_grade, 1)
    ON CONFLICT (section_id, final_grade)
    DO UPDATE SET registrations = section_grade_counts.registrations + 1;
END""",
    """CREATE TRIGGER IF NOT EXISTS section_grade_counts_update
AFTER UPDATE OF section_id, status, final_grade ON registrations
WHEN (OLD.section_id IS NOT NEW.section_id OR OLD.status IS NOT NEW.status
      OR OLD.final_grade IS NOT NEW.final_grade)
  AND ((OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
       OR (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL))
BEGIN
    UPDATE section_grade_counts SET registrations = registrations - 1
    WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade
      AND OLD.status = 'enrolled';
    INSERT INTO section_grade_counts (section_id, final_grade, registrations)
    SELECT NEW.section_id, NEW.final_grade, 1
    WHERE NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL
    ON CONFLICT (section_id, final_grade)
    DO UPDATE SET registrations = section_grade_counts.registrations + 1;
END""",
    """CREATE TRIGGER IF NOT EXISTS section_grade_counts_delete
AFTER DELETE ON registrations
WHEN OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL
BEGIN
    UPDATE section_grade_counts SET registrations = registrations - 1
    WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade;
END""",
    """CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_insert
AFTER INSERT ON attendance_records
BEGIN
    INSERT INTO lab_session_attendance_counts (lab_session_id, present, late, absent, excused)
    VALUES (NEW.lab_session_id, NEW.status = 'present', NEW.status = 'late',
            NEW.status = 'absent', NEW.status = 'excused')
    ON CONFLICT (lab_session_id) DO UPDATE SET
        present = lab_session_attendance_counts.present + excluded.present,
        late = lab_session_attendance_counts.late + excluded.late,
        absent = lab_session_attendance_counts.absent + excluded.absent,
        excused = lab_session_attendance_counts.excused + excluded.excused;
END""",
    """CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_update
AFTER UPDATE OF lab_session_id, status ON attendance_records
WHEN OLD.lab_session_id IS NOT NEW.lab_session_id OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE lab_session_attendance_counts SET
        present = present - (OLD.status = 'present'), late = late - (OLD.status = 'late'),
        absent = absent - (OLD.status = 'absent'), excused = excused - (OLD.status = 'excused')
    WHERE lab_session_id = OLD.lab_session_id;
    INSERT INTO lab_session_attendance_counts (lab_session_id, present, late, absent, excused)
    VALUES (NEW.lab_session_id, NEW.status = 'present', NEW.status = 'late',
            NEW.status = 'absent', NEW.status = 'excused')
    ON CONFLICT (lab_session_id) DO UPDATE SET
        present = lab_session_attendance_counts.present + excluded.present,
        late = lab_session_attendance_counts.late + excluded.late,
        absent = lab_session_attendance_counts.absent + excluded.absent,
        excused = lab_session_attendance_counts.excused + excluded.excused;
END""",
    """CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_delete
AFTER DELETE ON attendance_records
BEGIN
    UPDATE lab_session_attendance_counts SET
        present = present - (OLD.status = 'present'), late = late - (OLD.status = 'late'),
        absent = absent - (OLD.status = 'absent'), excused = excused - (OLD.status = 'excused')
    WHERE lab_session_id = OLD.lab_session_id;
END""",
)

POSTGRESQL_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION count_section_grades() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE section_grade_counts SET registrations = registrations - 1
        WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade
          AND OLD.status = 'enrolled';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'enrolled'
       AND NEW.final_grade IS NOT NULL THEN
        INSERT INTO section_grade_counts (section_id, final_grade, registrations)
        VALUES (NEW.section_id, NEW.final_grade, 1)
        ON CONFLICT (section_id, final_grade)
        DO UPDATE SET registrations = section_grade_counts.registrations + 1;
    END IF;
    RETURN NULL;
END
$$""",
    'DROP TRIGGER IF EXISTS section_grade_counts_insert ON registrations',
    """CREATE TRIGGER section_grade_counts_insert
AFTER INSERT ON registrations FOR EACH ROW
WHEN (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL)
EXECUTE FUNCTION count_section_grades()""",
    'DROP TRIGGER IF EXISTS section_grade_counts_update ON registrations',
    """CREATE TRIGGER section_grade_counts_update
AFTER UPDATE OF section_id, status, final_grade ON registrations FOR EACH ROW
WHEN ((OLD.section_id, OLD.status, OLD.final_grade)
      IS DISTINCT FROM (NEW.section_id, NEW.status, NEW.final_grade)
  AND ((OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
       OR (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL)))
EXECUTE FUNCTION count_section_grades()""",
    'DROP TRIGGER IF EXISTS section_grade_counts_delete ON registrations',
    """CREATE TRIGGER section_grade_counts_delete
AFTER DELETE ON registrations FOR EACH ROW
WHEN (OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
EXECUTE FUNCTION count_section_grades()""",
    """CREATE OR REPLACE FUNCTION count_lab_session_attendance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE lab_session_attendance_counts SET
            present = present - (OLD.status = 'present')::int,
            late = late - (OLD.status = 'late')::int,
            absent = absent - (OLD.status = 'absent')::int,
            excused = excused - (OLD.status = 'excused')::int
        WHERE lab_session_id = OLD.lab_session_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO lab_session_attendance_counts
            (lab_session_id, present, late, absent, excused)
        VALUES (NEW.lab_session_id, (NEW.status = 'present')::int, (NEW.status = 'late')::int,
                (NEW.status = 'absent')::int, (NEW.status = 'excused')::int)
        ON CONFLICT (lab_session_id) DO UPDATE SET
            present = lab_session_attendance_counts.present + excluded.present,
            late = lab_session_attendance_counts.late + excluded.late,
            absent = lab_session_attendance_counts.absent + excluded.absent,
            excused = lab_session_attendance_counts.excused + excluded.excused;
    END IF;
    RETURN NULL;
END
$$""",
    'DROP TRIGGER IF EXISTS lab_session_attendance_counts_insert ON attendance_records',
    """CREATE TRIGGER lab_session_attendance_counts_insert
AFTER INSERT ON attendance_records FOR EACH ROW
EXECUTE FUNCTION count_lab_session_attendance()""",
    'DROP TRIGGER IF EXISTS lab_session_attendance_counts_update ON attendance_records',
    """CREATE TRIGGER lab_session_attendance_counts_update
AFTER UPDATE OF lab_session_id, status ON attendance_records FOR EACH ROW
WHEN ((OLD.lab_session_id, OLD.status) IS DISTINCT FROM (NEW.lab_session_id, NEW.status))
EXECUTE FUNCTION count_lab_session_attendance()""",
    'DROP TRIGGER IF EXISTS lab_session_attendance_counts_delete ON attendance_records',
    """CREATE TRIGGER lab_session_attendance_counts_delete
AFTER DELETE ON attendance_records FOR EACH ROW
EXECUTE FUNCTION count_lab_session_attendance()""",
)

FILL_GRADE_COUNTS = """INSERT INTO section_grade_counts (section_id, final_grade, registrations)
SELECT section_id, final_grade, count(*) FROM registrations
WHERE status = 'enrolled' AND final_grade IS NOT NULL
GROUP BY section_id, final_grade"""

FILL_ATTENDANCE_COUNTS = """INSERT INTO lab_session_attendance_counts
    (lab_session_id, present, late, absent, excused)
SELECT lab_session_id,
       sum(CASE WHEN status = 'present' THEN 1 ELSE 0 END),
       sum(CASE WHEN status = 'late' THEN 1 ELSE 0 END),
       sum(CASE WHEN status = 'absent' THEN 1 ELSE 0 END),
       sum(CASE WHEN status = 'excused' THEN 1 ELSE 0 END)
FROM attendance_records GROUP BY lab_session_id"""


def upgrade():
    op.create_table(
        'section_grade_counts',
        sa.Column('section_id', sa.Uuid(), nullable=False),
        sa.Column('final_grade', sa.String(length=2), nullable=False),
        sa.Column('registrations', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('section_id', 'final_grade', name=op.f('pk_section_grade_counts')),
    )
    op.create_table(
        'lab_session_attendance_counts',
        sa.Column('lab_session_id', sa.Uuid(), nullable=False),
        sa.Column('present', sa.Integer(), nullable=False),
        sa.Column('late', sa.Integer(), nullable=False),
        sa.Column('absent', sa.Integer(), nullable=False),
        sa.Column('excused', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('lab_session_id', name=op.f('pk_lab_session_attendance_counts')),
    )
    # Triggers first, then the counts of the rows already there: on PostgreSQL creating a
    # trigger locks its table against writes until this migration commits, so no write falls
    # between the two.
    triggers = SQLITE_TRIGGERS if op.get_bind().dialect.name == 'sqlite' else POSTGRESQL_TRIGGERS
    for statement in triggers:
        op.execute(statement)
    op.execute(FILL_GRADE_COUNTS)
    op.execute(FILL_ATTENDANCE_COUNTS)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for trigger in ('insert', 'update', 'delete'):
            op.execute(f'DROP TRIGGER IF EXISTS section_grade_counts_{trigger} ON registrations')
            op.execute(
                f'DROP TRIGGER IF EXISTS lab_session_attendance_counts_{trigger} '
                'ON attendance_records'
            )
        op.execute('DROP FUNCTION IF EXISTS count_section_grades()')
        op.execute('DROP FUNCTION IF EXISTS count_lab_session_attendance()')
    else:
        for trigger in ('insert', 'update', 'delete'):
            op.execute(f'DROP TRIGGER IF EXISTS section_grade_counts_{trigger}')
            op.execute(f'DROP TRIGGER IF EXISTS lab_session_attendance_counts_{trigger}')
    op.drop_table('lab_session_attendance_counts')
    op.drop_table('section_grade_counts')
