"""sync_sign_in_grants: a person's sign-in on a copy through the server's pages (RFC 8252 loopback
codes, RFC 8628 device codes); offline_pins: a copy's offline PINs for single sign-on accounts;
sync_state.server_single_sign_on: whether the copy's server offers single sign-on

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sync_sign_in_grants',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('user_code_hash', sa.String(length=64), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('redirect_uri', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('polled_at', sa.DateTime(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['sync_devices.id'], name=op.f('fk_sync_sign_in_grants_device_id_sync_devices')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sync_sign_in_grants_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_sign_in_grants')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_sync_sign_in_grants_code_hash')),
    sa.UniqueConstraint('user_code_hash', name=op.f('uq_sync_sign_in_grants_user_code_hash'))
    )
    with op.batch_alter_table('sync_sign_in_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_sign_in_grants_device_id'), ['device_id'], unique=False)

    op.create_table('offline_pins',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('pin_hash', sa.String(length=255), nullable=False),
    sa.Column('online_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_offline_pins'))
    )
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('server_single_sign_on', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_column('server_single_sign_on')
    op.drop_table('offline_pins')
    with op.batch_alter_table('sync_sign_in_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_sign_in_grants_device_id'))
    op.drop_table('sync_sign_in_grants')
