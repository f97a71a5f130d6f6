"""Closing a tenant (``tenant_close``) and reopening it (``tenant_reopen``): audited, with
a reason; a closed tenant's keys are revoked, its authorizations denied and its usage
refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from metering.models import Authorization, UsageEvent
from policies.models import Restriction
from policies.services.authorize import authorization_create
from policies.services.restrictions import tenant_status_refresh
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create, tenant_close, tenant_reopen
from tests.conftest import Api, World, event, issue


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user(username="closer", is_staff=True)


def suspend(tenant: Tenant) -> None:
    """A whole-tenant suspension, and the tenant's status refreshed as
    ``restriction_apply`` does."""
    now = timezone.now()
    Restriction.objects.create(
        tenant=tenant,
        channel=None,
        kind=Restriction.Kind.SUSPEND,
        starts_at=now,
        created_at=now,
        reason="Abuse",
    )
    tenant_status_refresh(tenant=tenant, now=now)


def test_closing_a_tenant_revokes_its_keys_and_writes_its_audit_row(world: World, staff: User):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.CLOSED
    assert not ApiKey.objects.filter(tenant=world.alpha, revoked_at=None).exists()
    assert ApiKey.objects.filter(tenant=world.beta, revoked_at=None).exists()
    entry = AuditEntry.objects.get(action="tenant.close")
    assert (entry.actor, entry.tenant, entry.reason) == (staff, world.alpha, "Contract ended")
    assert entry.before == {"status": "active"}
    assert entry.after["status"] == "closed"
    assert len(entry.after["revoked_keys"]) == 2  # alice's and bob's
    revocations = AuditEntry.objects.filter(action="api_key.revoke", tenant=world.alpha)
    assert revocations.count() == 2
    assert {r.reason for r in revocations} == {"Tenant closed: Contract ended"}


@pytest.mark.parametrize("reason", ["", "   "])
def test_closing_a_tenant_needs_a_reason(world: World, staff: User, reason: str):
    with pytest.raises(InvalidInput):
        tenant_close(tenant=world.alpha, reason=reason, actor=staff)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE
    assert not AuditEntry.objects.filter(action="tenant.close").exists()


def test_closing_a_closed_tenant_is_refused(world: World, staff: User):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    with pytest.raises(Conflict):
        tenant_close(tenant=world.alpha, reason="Again", actor=staff)
    assert AuditEntry.objects.filter(action="tenant.close").count() == 1


def test_a_closed_tenants_authorizations_are_denied(world: World, staff: User):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    world.alpha.refresh_from_db()
    authorization = authorization_create(tenant=world.alpha, channel_code="sms", quantity=1)
    assert authorization.decision == Authorization.Decision.DENY
    assert authorization.reason == "tenant_suspended"


def test_a_closed_tenants_usage_and_authorizations_are_refused_at_the_api(
    world: World, staff: User
):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    assert world.alice_api.ingest([event("late")]).status_code == 401
    response = world.alice_api.post("/api/v1/authorizations", {"channel": "sms", "quantity": 1})
    assert response.status_code == 401
    assert not UsageEvent.objects.filter(tenant=world.alpha).exists()
    assert world.beta_api.ingest([event("b-1")]).status_code == 200


def test_a_closed_tenant_is_issued_no_key(world: World, staff: User):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    with pytest.raises(Conflict, match="closed"):
        issue(world.alpha)


def test_a_tenant_closed_since_it_was_read_is_issued_no_key(world: World, staff: User):
    """The key is issued under the tenant's row lock, on its status read afresh: it cannot
    slip past a close, which revokes the keys under the same lock."""
    stale = Tenant.objects.get(pk=world.alpha.pk)
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    with pytest.raises(Conflict, match="closed"):
        api_key_create(tenant=stale, name="racer", scopes=["usage:write"])
    assert not ApiKey.objects.filter(tenant=world.alpha, revoked_at=None).exists()


def test_a_restriction_on_a_stale_tenant_leaves_it_closed(world: World, staff: User):
    """``tenant_status_refresh`` (``restriction_apply`` calls it) derives the status from
    restrictions; a tenant closed since the caller read it must not come back as
    suspended."""
    stale = Tenant.objects.get(pk=world.alpha.pk)
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    suspend(stale)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.CLOSED


def test_reopening_a_tenant_makes_it_active_and_is_audited(world: World, staff: User):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    tenant_reopen(tenant=world.alpha, reason="Contract renewed", actor=staff)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE
    entry = AuditEntry.objects.get(action="tenant.reopen")
    assert (entry.actor, entry.reason) == (staff, "Contract renewed")
    assert (entry.before, entry.after) == ({"status": "closed"}, {"status": "active"})
    # Revocation is final: the reopened tenant needs new keys, and may be issued them.
    assert world.alice_api.ingest([event("after")]).status_code == 401
    assert Api(issue(world.alpha).raw_key).ingest([event("after")]).status_code == 200


def test_a_reopened_tenant_takes_the_status_of_its_restrictions(world: World, staff: User):
    suspend(world.alpha)
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    tenant_reopen(tenant=world.alpha, reason="Contract renewed", actor=staff)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.SUSPENDED
    assert AuditEntry.objects.get(action="tenant.reopen").after == {"status": "suspended"}


def test_reopening_needs_a_reason_and_a_closed_tenant(world: World, staff: User):
    with pytest.raises(Conflict):
        tenant_reopen(tenant=world.alpha, reason="Why not", actor=staff)
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=staff)
    with pytest.raises(InvalidInput):
        tenant_reopen(tenant=world.alpha, reason=" ", actor=staff)
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.CLOSED
    assert not AuditEntry.objects.filter(action="tenant.reopen").exists()
