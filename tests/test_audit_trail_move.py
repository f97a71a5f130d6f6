"""The audit trail moved from policies to the kernel by a state-only migration: an existing
database keeps its rows, its append-only trigger and the staff groups' permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.models import AuditEntry
from tests.conftest import World


def audit_app_label() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT app_label FROM django_content_type WHERE model = 'auditentry'")
        return str(cursor.fetchone()[0])


# serialized_rollback, as the other migration tests: the flush after it then leaves the
# database as the other transactional tests expect.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_move_keeps_rows_and_permissions_both_ways(world: World):
    entry = audit_record(
        actor=None,
        action="tenant.create",
        tenant=world.alpha,
        obj=world.alpha,
        before=None,
        after={"name": "Alpha"},
        reason="kept across the move",
        now=timezone.now(),
    )
    billing_view = "creditguard.view_auditentry"
    assert billing_view in {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name="Billing").permissions.all()
    }
    executor = MigrationExecutor(connection)
    # Back to every app's newest migration afterwards, not to the move's: the later
    # migrations of policies (and the apps after it) must be there for the next tests.
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(
            [("policies", "0005_fair_use_policy_1_0"), ("creditguard", "0001_worker_heartbeat")]
        )
        assert audit_app_label() == "policies"
        with connection.cursor() as cursor:
            cursor.execute("SELECT reason FROM policies_auditentry WHERE id = %s", [entry.pk])
            assert cursor.fetchall() == [("kept across the move",)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    ContentType.objects.clear_cache()
    assert audit_app_label() == "creditguard"
    assert AuditEntry.objects.get(pk=entry.pk).reason == "kept across the move"
    codes = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name="Billing").permissions.all()
    }
    assert billing_view in codes
