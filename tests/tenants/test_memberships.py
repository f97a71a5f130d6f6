"""A tenant's members change only through ``membership_add``, ``membership_change_role`` and
``membership_remove``: validated and audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from tenants.models import Membership
from tenants.services import membership_add, membership_change_role, membership_remove
from tests.conftest import World


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user(username="staff", is_staff=True)


def test_adding_a_member_is_audited(world: World, staff: User):
    carol = User.objects.create_user(username="carol")
    membership = membership_add(tenant=world.beta, user=carol, role="viewer", actor=staff)
    assert (membership.tenant, membership.user, membership.role) == (world.beta, carol, "viewer")
    entry = AuditEntry.objects.get(action="membership.add")
    assert (entry.actor, entry.tenant, entry.object_id) == (staff, world.beta, str(membership.pk))
    assert (entry.before, entry.after) == (None, {"user": "carol", "role": "viewer"})


def test_an_unknown_role_is_refused(world: World, staff: User):
    carol = User.objects.create_user(username="carol")
    with pytest.raises(InvalidInput):
        membership_add(tenant=world.beta, user=carol, role="god", actor=staff)
    alice = Membership.objects.get(user__username="alice")
    with pytest.raises(InvalidInput):
        membership_change_role(membership=alice, role="god", actor=staff)
    assert not Membership.objects.filter(user=carol).exists()
    assert not AuditEntry.objects.filter(action__startswith="membership.").exists()


def test_a_member_is_added_once(world: World, staff: User):
    alice = User.objects.get(username="alice")
    with pytest.raises(Conflict):
        membership_add(tenant=world.alpha, user=alice, role="viewer", actor=staff)
    assert Membership.objects.filter(user=alice).count() == 1


def test_changing_a_role_is_audited_and_the_same_role_is_no_change(world: World, staff: User):
    alice = Membership.objects.get(user__username="alice")
    membership_change_role(membership=alice, role="admin", actor=staff)  # as it is
    assert not AuditEntry.objects.filter(action="membership.change_role").exists()
    membership_change_role(membership=alice, role="owner", actor=staff)
    alice.refresh_from_db()
    assert alice.role == "owner"
    entry = AuditEntry.objects.get(action="membership.change_role")
    assert (entry.before, entry.after) == (
        {"user": "alice", "role": "admin"},
        {"user": "alice", "role": "owner"},
    )


def test_removing_a_member_is_audited_once(world: World, staff: User):
    bob = Membership.objects.get(user__username="bob")
    membership_remove(membership=bob, actor=staff, reason="Left the company")
    assert not Membership.objects.filter(pk=bob.pk).exists()
    entry = AuditEntry.objects.get(action="membership.remove")
    assert (entry.tenant, entry.object_id, entry.reason) == (
        world.alpha,
        str(bob.pk),
        "Left the company",
    )
    assert (entry.before, entry.after) == ({"user": "bob", "role": "admin"}, None)
    with pytest.raises(Conflict):
        membership_remove(membership=bob, actor=staff)
    assert AuditEntry.objects.filter(action="membership.remove").count() == 1
