"""Revoking an API key: audited, once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User
from django.db import connection

from creditguard.models import AuditEntry
from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.conftest import World, issue
from tests.factories import TenantFactory


def test_revoking_a_key_writes_its_audit_row(world: World):
    api_key = issue(world.beta).api_key
    staff = User.objects.create_user(username="admin", is_staff=True)
    assert api_key_revoke(api_key=api_key, actor=staff, reason="Leaked in a ticket")
    entry = AuditEntry.objects.get(action="api_key.revoke")
    api_key.refresh_from_db()
    assert (entry.actor, entry.tenant, entry.object_id, entry.reason) == (
        staff,
        world.beta,
        str(api_key.pk),
        "Leaked in a ticket",
    )
    assert entry.before == {"revoked_at": None}
    assert entry.after["revoked_at"] is not None and api_key.revoked_at is not None


def test_revoking_twice_keeps_the_first_time_and_one_audit_row(world: World):
    api_key = issue(world.alpha).api_key
    assert api_key_revoke(api_key=api_key)
    api_key.refresh_from_db()
    first = api_key.revoked_at
    assert not api_key_revoke(api_key=api_key)
    api_key.refresh_from_db()
    assert api_key.revoked_at == first
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1
    assert AuditEntry.objects.get(action="api_key.revoke").actor_label == "system"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_revocations_write_one_audit_row():
    tenant = TenantFactory.create()
    api_key = issue(tenant).api_key
    barrier = threading.Barrier(2)

    def revoke() -> bool:
        try:
            barrier.wait()
            return api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: revoke(), range(2)))
    assert sorted(results) == [False, True]
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1
