"""Make the ledger append-only in the database itself: UPDATE and DELETE of a
ledger entry raise, whatever code tries. PostgreSQL only (the ledger of record);
the embedded SQLite demo relies on the services."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION metering_ledgerentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER metering_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON metering_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION metering_ledgerentry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS metering_ledgerentry_append_only ON metering_ledgerentry;
DROP FUNCTION IF EXISTS metering_ledgerentry_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("metering", "0003_ledger_rows_protect_their_tenant")]

    operations = [migrations.RunPython(forwards, backwards)]
