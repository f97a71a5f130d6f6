"""Invitations to join a tenant: hashed token, expiry, single use, audited."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput, NotFound
from creditguard.models import AuditEntry
from tenants.invitations import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    invitation_token_hash,
)
from tenants.models import Invitation, Membership
from tests.factories import MembershipFactory, TenantFactory


@pytest.fixture
def owner(db) -> Membership:
    return MembershipFactory.create(role=Membership.Role.OWNER)


def test_only_the_hash_of_the_token_is_stored_and_the_invitation_is_audited(owner, settings):
    issued = invitation_create(
        tenant=owner.tenant, email=" Nina@Example.com ", role="admin", actor=owner.user
    )
    invitation = Invitation.objects.get()
    assert invitation.token_hash == invitation_token_hash(issued.token) != issued.token
    assert invitation.email == "nina@example.com"
    assert invitation.expires_at == invitation.created_at + timedelta(
        days=settings.INVITATION_VALIDITY_DAYS
    )
    entry = AuditEntry.objects.get(action="invitation.create")
    assert entry.actor == owner.user and issued.token not in str(entry.after)


def test_accepting_creates_the_person_and_the_membership_once(owner):
    issued = invitation_create(tenant=owner.tenant, email="nina@example.com", role="viewer",
                               actor=owner.user)  # fmt: skip
    membership = invitation_accept(token=issued.token, username="nina", password="pw-12345-long")
    user = User.objects.get(username="nina")
    assert (membership.user, membership.tenant, membership.role) == (user, owner.tenant, "viewer")
    assert user.email == "nina@example.com" and user.check_password("pw-12345-long")
    assert AuditEntry.objects.filter(action="invitation.accept", actor=user).count() == 1
    with pytest.raises(NotFound):
        invitation_accept(token=issued.token, username="nina2", password="pw-12345-long")


def test_a_signed_in_person_is_added_to_the_tenant(owner):
    other = MembershipFactory.create(role="owner").user
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    invitation_accept(token=issued.token, user=other)
    assert Membership.objects.get(user=other, tenant=owner.tenant).role == "admin"


def test_an_expired_invitation_cannot_be_accepted(owner, settings):
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    later = timezone.now() + timedelta(days=settings.INVITATION_VALIDITY_DAYS, seconds=1)
    with pytest.raises(NotFound):
        invitation_accept(token=issued.token, username="x", password="pw-12345-long", now=later)
    assert not User.objects.filter(username="x").exists()


def test_a_withdrawn_invitation_cannot_be_accepted(owner):
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    invitation_revoke(tenant=owner.tenant, invitation_id=issued.invitation.pk, actor=owner.user)
    with pytest.raises(NotFound):
        invitation_accept(token=issued.token, username="x", password="pw-12345-long")
    assert AuditEntry.objects.filter(action="invitation.revoke").count() == 1


def test_another_tenants_invitation_cannot_be_withdrawn(owner):
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    with pytest.raises(NotFound):
        invitation_revoke(tenant=TenantFactory.create(), invitation_id=issued.invitation.pk,
                          actor=None)  # fmt: skip


def test_inviting_again_replaces_the_open_invitation(owner):
    first = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                              actor=owner.user)  # fmt: skip
    invitation_create(tenant=owner.tenant, email="x@example.com", role="viewer", actor=owner.user)
    with pytest.raises(NotFound):
        invitation_accept(token=first.token, username="x", password="pw-12345-long")


@pytest.mark.parametrize("email,role", [("not-an-address", "admin"), ("x@example.com", "god")])
def test_bad_input_is_refused(owner, email, role):
    with pytest.raises(InvalidInput):
        invitation_create(tenant=owner.tenant, email=email, role=role, actor=owner.user)
    assert not Invitation.objects.exists()


def test_a_member_is_not_invited_and_a_taken_user_name_uses_nothing_up(owner):
    owner.user.email = "olga@example.com"
    owner.user.save()
    with pytest.raises(Conflict):
        invitation_create(tenant=owner.tenant, email="OLGA@example.com", role="admin",
                          actor=owner.user)  # fmt: skip
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    with pytest.raises(Conflict):
        invitation_accept(token=issued.token, username=owner.user.username, password="pw-1234567")
    assert invitation_accept(token=issued.token, username="xavier", password="pw-1234567")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_acceptances_of_one_link_at_once_make_one_member():
    owner = MembershipFactory.create(role=Membership.Role.OWNER)
    issued = invitation_create(tenant=owner.tenant, email="x@example.com", role="admin",
                               actor=owner.user)  # fmt: skip
    barrier = threading.Barrier(2)
    results: list[str] = []

    def accept(name: str) -> None:
        try:
            barrier.wait()
            invitation_accept(token=issued.token, username=name, password="pw-12345-long")
            results.append("ok")
        except NotFound:
            results.append("used")
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(name,)) for name in ("x1", "x2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "used"]
    assert Membership.objects.filter(tenant=owner.tenant).count() == 2
