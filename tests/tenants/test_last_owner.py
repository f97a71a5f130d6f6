"""A tenant with an owner keeps one: the last owner can be neither removed nor demoted,
whoever asks, and two owners removing each other at the same moment leave one."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from creditguard.errors import Conflict
from creditguard.models import AuditEntry
from tenants.models import Membership
from tenants.services import membership_change_role, membership_remove
from tests.factories import MembershipFactory, TenantFactory


@pytest.fixture
def owners(db) -> tuple[Membership, Membership]:
    tenant = TenantFactory.create(slug="owned")
    return (
        MembershipFactory.create(tenant=tenant, role=Membership.Role.OWNER),
        MembershipFactory.create(tenant=tenant, role=Membership.Role.OWNER),
    )


def test_the_last_owner_cannot_be_removed(owners):
    first, second = owners
    membership_remove(membership=first, actor=second.user)
    with pytest.raises(Conflict):
        membership_remove(membership=second, actor=second.user)
    assert Membership.objects.filter(pk=second.pk).exists()
    assert AuditEntry.objects.filter(action="membership.remove").count() == 1


def test_the_last_owner_cannot_be_demoted(owners):
    first, second = owners
    membership_change_role(membership=first, role="admin", actor=second.user)
    with pytest.raises(Conflict):
        membership_change_role(membership=second, role="viewer", actor=second.user)
    second.refresh_from_db()
    assert second.role == "owner"


def test_other_members_of_a_tenant_without_owners_can_be_removed(db):
    admin = MembershipFactory.create(role=Membership.Role.ADMIN)
    membership_remove(membership=admin, actor=None)
    assert not Membership.objects.filter(pk=admin.pk).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_owners_removing_each_other_at_once_leave_one():
    tenant = TenantFactory.create(slug="race")
    first, second = (
        MembershipFactory.create(tenant=tenant, role=Membership.Role.OWNER) for _ in range(2)
    )
    barrier = threading.Barrier(2)
    refused: list[BaseException] = []

    def remove(membership: Membership, actor) -> None:
        try:
            barrier.wait()
            membership_remove(membership=membership, actor=actor)
        except Conflict as exc:
            refused.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=remove, args=(first, second.user)),
        threading.Thread(target=remove, args=(second, first.user)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refused) == 1
    assert Membership.objects.filter(tenant=tenant, role="owner").count() == 1
