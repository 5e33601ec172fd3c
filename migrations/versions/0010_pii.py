"""personal data encrypted at rest, found by keyed hashes; accounts can be deleted

Phone numbers, e-mail addresses, real names, order contacts, WeChat openids/unionids and
message recipients become ciphertext (``boxoffice.pii``: SecretBox, key id in every value);
lookups and uniqueness move to HMAC-SHA256 hash columns. Existing rows are encrypted here
(data migration, on SQLite and PostgreSQL), with the keys the process has installed
(``boxoffice migrate`` installs the configured ones) or, failing that, the configured keys.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMES = {'uq': 'uq_%(table_name)s_%(column_0_name)s'}
BATCH = 500

# table -> encrypted columns
SEALED: dict[str, tuple[str, ...]] = {
    'users': ('email', 'phone', 'real_name'),
    'orders': ('contact_name', 'contact_phone'),
    'wechat_accounts': ('openid', 'unionid'),
    'sandbox_messages': ('recipient',),
    'notifications': ('recipient',),
}
# the old lengths, for the downgrade
LENGTHS = {
    ('users', 'email'): 254,
    ('users', 'phone'): 32,
    ('users', 'real_name'): 64,
    ('orders', 'contact_name'): 64,
    ('orders', 'contact_phone'): 32,
    ('wechat_accounts', 'openid'): 128,
    ('wechat_accounts', 'unionid'): 128,
    ('sandbox_messages', 'recipient'): 254,
    ('notifications', 'recipient'): 254,
}


class _LazyCipher:
    """The process's PII cipher, or one from the configured keys — looked up only when a
    row needs it, so migrating an empty database needs no keys."""

    def __init__(self) -> None:
        self._cipher: Any = None

    def get(self) -> Any:
        if self._cipher is None:
            from boxoffice import pii

            try:
                self._cipher = pii.cipher()
            except pii.PiiKeyError:
                from boxoffice.config import Settings

                self._cipher = pii.PiiCipher(Settings().secrets.pii)
        return self._cipher


def _hashes(table: str, row: dict[str, Any], cipher: _LazyCipher) -> dict[str, Any]:
    """The lookup hashes of a row's plaintext values."""

    def h(kind: str, value: str | None) -> str | None:
        return None if value is None else cipher.get().lookup_hash(kind, value)

    if table == 'users':
        return {'email_hash': h('email', row['email']), 'phone_hash': h('phone', row['phone'])}
    if table == 'orders':
        return {'contact_phone_hash': h('phone', row['contact_phone'])}
    if table == 'wechat_accounts':
        return {
            'openid_hash': h('openid', f"{row['app_id']}\x00{row['openid']}"),
            'unionid_hash': h('unionid', row['unionid']),
        }
    if table == 'sandbox_messages':
        recipient = row['recipient']
        return {'recipient_hash': h('email' if '@' in recipient else 'phone', recipient)}
    return {}


def _rows(table: str, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every row's id and ``columns``, in id order, a batch at a time."""
    bind = op.get_bind()
    t = sa.table(table, sa.column('id'), *(sa.column(c) for c in columns))
    last = ''
    while True:
        batch = bind.execute(
            sa.select(t).where(t.c.id > last).order_by(t.c.id).limit(BATCH)
        ).mappings().all()
        if not batch:
            return
        yield from (dict(r) for r in batch)
        last = batch[-1]['id']


def _rewrite(
    table: str,
    columns: Sequence[str],
    extra: Sequence[str],
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Update each row of ``table`` with what ``change`` makes of it."""
    bind = op.get_bind()
    for row in _rows(table, (*columns, *extra)):
        values = change(row)
        if values:
            t = sa.table(table, sa.column('id'), *(sa.column(c) for c in values))
            bind.execute(t.update().where(t.c.id == row['id']).values(**values))


def _seal_all() -> None:
    from boxoffice.pii import is_sealed

    cipher = _LazyCipher()
    for table, columns in SEALED.items():
        extra = ('app_id',) if table == 'wechat_accounts' else ()

        def seal(
            row: dict[str, Any], table: str = table, columns: tuple[str, ...] = columns
        ) -> dict[str, Any]:
            plain = dict(row)
            values: dict[str, Any] = {}
            for column in columns:
                value = row[column]
                if value is None:
                    continue
                if is_sealed(value):
                    plain[column] = cipher.get().decrypt(value)
                else:
                    values[column] = cipher.get().encrypt(value)
            values.update(_hashes(table, plain, cipher))
            return values

        _rewrite(table, columns, extra, seal)


def _open_all() -> None:
    from boxoffice.pii import is_sealed

    cipher = _LazyCipher()
    for table, columns in SEALED.items():

        def unseal(row: dict[str, Any], columns: tuple[str, ...] = columns) -> dict[str, Any]:
            return {
                c: cipher.get().decrypt(row[c]) for c in columns if row[c] and is_sealed(row[c])
            }

        _rewrite(table, columns, (), unseal)


def _unique_name(table: str, columns: list[str]) -> str:
    """The name of the unique constraint on ``columns`` (SQLite: the batch naming convention's,
    since SQLite's are unnamed)."""
    for unique in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if sorted(unique['column_names']) == sorted(columns) and unique.get('name'):
            return str(unique['name'])
    return NAMES['uq'] % {'table_name': table, 'column_0_name': columns[0]}


def upgrade() -> None:
    # 1. room for ciphertext, and the hash columns (nullable until filled)
    for table, columns in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.String(length=LENGTHS[(table, column)]),
                    type_=sa.Text(),
                )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('phone_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_phone_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('openid_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('unionid_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient_hash', sa.String(length=64), nullable=True))

    # 2. encrypt what is there, and hash it
    _seal_all()

    # 3. uniqueness and lookups move to the hashes
    users_email = _unique_name('users', ['email'])
    users_phone = _unique_name('users', ['phone'])
    wechat_openid = _unique_name('wechat_accounts', ['app_id', 'openid'])
    with op.batch_alter_table('users', schema=None, naming_convention=NAMES) as batch_op:
        batch_op.drop_constraint(users_email, type_='unique')
        batch_op.drop_constraint(users_phone, type_='unique')
        batch_op.create_index('ix_users_email_hash', ['email_hash'], unique=True)
        batch_op.create_index('ix_users_phone_hash', ['phone_hash'], unique=True)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_contact_phone_hash', ['contact_phone_hash'], unique=False)
    with op.batch_alter_table('wechat_accounts', schema=None, naming_convention=NAMES) as batch_op:
        batch_op.drop_constraint(wechat_openid, type_='unique')
        batch_op.drop_index('ix_wechat_accounts_unionid')
        batch_op.alter_column('openid_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_wechat_accounts_app_openid', ['app_id', 'openid_hash'])
        batch_op.create_index('ix_wechat_accounts_unionid_hash', ['unionid_hash'], unique=False)
    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sandbox_messages_recipient')
        batch_op.create_index('ix_sandbox_messages_recipient_hash', ['recipient_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sandbox_messages_recipient_hash')
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_accounts_unionid_hash')
        batch_op.drop_constraint('uq_wechat_accounts_app_openid', type_='unique')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_contact_phone_hash')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_phone_hash')
        batch_op.drop_index('ix_users_email_hash')

    _open_all()

    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.drop_column('recipient_hash')
        batch_op.create_index('ix_sandbox_messages_recipient', ['recipient'], unique=False)
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.drop_column('unionid_hash')
        batch_op.drop_column('openid_hash')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('contact_phone_hash')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('phone_hash')
        batch_op.drop_column('email_hash')
    for table, columns in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.Text(),
                    type_=sa.String(length=LENGTHS[(table, column)]),
                )
    with op.batch_alter_table('wechat_accounts', schema=None) as batch_op:
        batch_op.create_index('ix_wechat_accounts_unionid', ['unionid'], unique=False)
        batch_op.create_unique_constraint('uq_wechat_accounts_app_id', ['app_id', 'openid'])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_users_email', ['email'])
        batch_op.create_unique_constraint('uq_users_phone', ['phone'])
