"""The audit trail is immutable in the database itself (PostgreSQL)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION policies_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER policies_auditentry_append_only
    BEFORE UPDATE OR DELETE ON policies_auditentry
    FOR EACH ROW EXECUTE FUNCTION policies_auditentry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS policies_auditentry_append_only ON policies_auditentry;
DROP FUNCTION IF EXISTS policies_auditentry_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
