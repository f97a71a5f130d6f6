"""Usage events and ledger entries partitioned by month; idempotency keys in their own table.

A unique index of a partitioned table must hold its partition key, so (tenant,
client_event_id) leaves the events for ``UsageEventKey`` (backfilled from the events here).
On PostgreSQL both tables are rebuilt as ``PARTITION BY RANGE`` of ``occurred_at`` and
``created_at``: a default partition, one per month that has rows and the months from last
one to three ahead (``metering.services.partitions`` keeps creating them), the rows copied,
the id sequence kept, primary key (id, <partition column>), and the indexes, foreign keys,
checks and triggers (the ledger's append-only trigger, 0004) recreated from the old table's
own definitions. SQLite keeps plain tables.
"""

import re
from datetime import UTC, datetime

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

TABLES = [("metering_usageevent", "occurred_at"), ("metering_ledgerentry", "created_at")]


def _month_add(month, months):
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _literal(at):
    return f"'{at:%Y-%m-%d %H:%M:%S}+00'"


def _rebuild(cursor, table, column, partitioned):
    """Rebuild ``table`` as a partitioned one (or back as a plain one) with its rows."""
    old = f"{table}_rebuilt"
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'c') AND conparentid = 0",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s::regclass "
        "AND NOT tgisinternal AND tgparentid = 0",
        [table],
    )
    triggers = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    last_value, is_called = cursor.fetchone()

    cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
    if partitioned:
        cursor.execute(f"CREATE TABLE {table} (LIKE {old}) PARTITION BY RANGE ({column})")
        cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'UTC') FROM {old}"
        )
        months = {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
        now = timezone.now()
        this = datetime(now.year, now.month, 1, tzinfo=UTC)
        months |= {_month_add(this, n) for n in range(-1, 4)}
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table} FOR VALUES FROM "
                f"({_literal(month)}) TO ({_literal(_month_add(month, 1))})"
            )
    else:
        cursor.execute(f"CREATE TABLE {table} (LIKE {old})")
    cursor.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    cursor.execute(f"DROP TABLE {old}")  # with its partitions and identity sequence

    # Identity columns need PostgreSQL 17 on partitioned tables: a sequence owned by the
    # column (Django's sequence reset finds it with pg_get_serial_sequence).
    cursor.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
    cursor.execute(f"SELECT setval('{table}_id_seq', %s, %s)", [last_value, is_called])
    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
    key = f"id, {column}" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
    for name, definition in constraints:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    on_old = re.compile(rf" ON (ONLY )?(\S+\.)?{old} ")
    for statement in indexes + triggers:
        cursor.execute(on_old.sub(f" ON {table} ", statement, count=1))


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, column in TABLES:
            _rebuild(cursor, table, column, partitioned=True)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, column in TABLES:
            _rebuild(cursor, table, column, partitioned=False)


def keys_backfill(apps, schema_editor):
    """One key per recorded event (ids were unique per tenant until now)."""
    schema_editor.execute(
        "INSERT INTO metering_usageeventkey "
        "(tenant_id, client_event_id, content_hash, period_id, received_at) "
        "SELECT tenant_id, client_event_id, content_hash, period_id, received_at "
        "FROM metering_usageevent",
        params=None,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('metering', '0011_authorization_retry_at'),
        ('tenants', '0002_invitations'),
    ]

    operations = [
        migrations.CreateModel(
            name='UsageEventKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('client_event_id', models.CharField(max_length=200)),
                ('content_hash', models.CharField(max_length=64)),
                ('received_at', models.DateTimeField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='usageevent',
            name='usage_event_unique_client_id',
        ),
        migrations.AddField(
            model_name='usageeventkey',
            name='period',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='metering.billingperiod'),
        ),
        migrations.AddField(
            model_name='usageeventkey',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddConstraint(
            model_name='usageeventkey',
            constraint=models.UniqueConstraint(fields=('tenant', 'client_event_id'), name='usage_event_key_unique_client_id'),
        ),
        migrations.RunPython(keys_backfill, migrations.RunPython.noop),
        migrations.RunPython(partition, unpartition),
    ]
