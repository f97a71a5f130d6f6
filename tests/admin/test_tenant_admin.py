"""The tenant's page and list in the console: closing and reopening tenants, and their
members, each through the service of the change, which writes the audit row."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from creditguard.models import AuditEntry
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import tenant_close
from tests.admin.test_write_paths import form_data
from tests.conftest import World

CHANGELIST = "admin:tenants_tenant_changelist"


def signed_in(role: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=role.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return User.objects.get(pk=user.pk), client


def act(client: Client, action: str, tenant: Tenant, **data: Any) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "index": "0", "_selected_action": [tenant.pk], **data},
    )


# Closing and reopening


def test_closing_asks_for_a_confirmation_and_a_reason_first(world: World):
    _, client = signed_in("Administrators")
    response = act(client, "close", world.alpha)
    assert response.status_code == 200
    assert b"revokes every API key" in response.content
    response = act(client, "close", world.alpha, apply="Confirm", reason="  ")
    assert response.status_code == 200  # the page again, with the error
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE


def test_administrators_close_a_tenant_in_the_console(world: World):
    user, client = signed_in("Administrators")
    response = act(client, "close", world.alpha, apply="Confirm", reason="Contract ended")
    assert response.status_code == 302
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.CLOSED
    assert not ApiKey.objects.filter(tenant=world.alpha, revoked_at=None).exists()
    entry = AuditEntry.objects.get(action="tenant.close")
    assert (entry.actor, entry.tenant, entry.reason) == (user, world.alpha, "Contract ended")


@pytest.mark.parametrize("role", ["Support", "Billing"])
def test_only_administrators_close_a_tenant(world: World, role: str):
    _, client = signed_in(role)
    act(client, "close", world.alpha, apply="Confirm", reason="Contract ended")
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE


def test_closing_a_closed_tenant_says_so_without_a_500(world: World):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=None)
    _, client = signed_in("Administrators")
    response = act(client, "close", world.alpha, apply="Confirm", reason="Again")
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="tenant.close").count() == 1


def test_administrators_reopen_a_closed_tenant(world: World):
    tenant_close(tenant=world.alpha, reason="Contract ended", actor=None)
    user, client = signed_in("Administrators")
    response = act(client, "reopen", world.alpha, apply="Confirm", reason="Renewed")
    assert response.status_code == 302
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE
    assert AuditEntry.objects.get(action="tenant.reopen").actor == user


# Members


def tenant_page(client: Client, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    return url, form_data(client.get(url))


def test_adding_a_member_in_the_admin_is_audited(world: World):
    carol = User.objects.create_user(username="carol")
    user, client = signed_in("Administrators")
    url, data = tenant_page(client, world.beta)
    data.update(
        {
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-user": carol.pk,
            "memberships-0-role": "admin",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    membership = Membership.objects.get(tenant=world.beta, user=carol)
    assert membership.role == "admin"
    entry = AuditEntry.objects.get(action="membership.add")
    assert (entry.actor, entry.tenant, entry.object_id) == (user, world.beta, str(membership.pk))
    assert entry.after == {"user": "carol", "role": "admin"}


def test_a_member_added_with_a_new_tenant_is_audited(world: World):
    carol = User.objects.create_user(username="carol")
    user, client = signed_in("Administrators")
    url = reverse("admin:tenants_tenant_add")
    data = form_data(client.get(url))
    data.update(
        {
            "name": "Delta", "slug": "delta", "industry": "retail", "size_band": "10-49",
            "language": "en", "currency": "EUR", "time_zone": "Europe/Vienna",
            "memberships-TOTAL_FORMS": "1", "memberships-0-user": carol.pk,
            "memberships-0-role": "owner",
        }
    )  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    delta = Tenant.objects.get(slug="delta")
    entry = AuditEntry.objects.get(action="membership.add")
    assert (entry.actor, entry.tenant, entry.after) == (
        user,
        delta,
        {"user": "carol", "role": "owner"},
    )


def test_adding_a_member_twice_in_the_admin_is_an_error_on_the_form(world: World):
    _, client = signed_in("Administrators")
    url, data = tenant_page(client, world.alpha)
    data.update(
        {
            "memberships-TOTAL_FORMS": "3",
            "memberships-2-user": User.objects.get(username="alice").pk,
            "memberships-2-role": "viewer",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200
    assert response.context["errors"]
    assert Membership.objects.filter(tenant=world.alpha).count() == 2
    assert not AuditEntry.objects.filter(action="membership.add").exists()


def test_changing_a_members_role_in_the_admin_is_audited(world: World):
    user, client = signed_in("Administrators")
    url, data = tenant_page(client, world.alpha)
    alice = Membership.objects.get(tenant=world.alpha, user__username="alice")
    index = next(i for i in range(2) if data[f"memberships-{i}-id"] == alice.pk)
    data[f"memberships-{index}-role"] = "viewer"
    assert client.post(url, data).status_code == 302
    alice.refresh_from_db()
    assert alice.role == "viewer"
    entry = AuditEntry.objects.get(action="membership.change_role")
    assert (entry.actor, entry.before["role"], entry.after["role"]) == (user, "admin", "viewer")


def test_removing_a_member_in_the_admin_is_audited(world: World):
    user, client = signed_in("Administrators")
    url, data = tenant_page(client, world.alpha)
    bob = Membership.objects.get(tenant=world.alpha, user__username="bob")
    index = next(i for i in range(2) if data[f"memberships-{i}-id"] == bob.pk)
    data[f"memberships-{index}-DELETE"] = "on"
    assert client.post(url, data).status_code == 302
    assert not Membership.objects.filter(pk=bob.pk).exists()
    entry = AuditEntry.objects.get(action="membership.remove")
    assert (entry.actor, entry.tenant, entry.before["user"]) == (user, world.alpha, "bob")


def test_saving_the_members_unchanged_writes_no_audit_row(world: World):
    _, client = signed_in("Administrators")
    url, data = tenant_page(client, world.alpha)
    assert client.post(url, data).status_code == 302
    assert not AuditEntry.objects.filter(action__startswith="membership.").exists()


def test_a_members_user_is_fixed_once_added(world: World):
    """A membership is a user's: changing its user would be another member, so the user
    of an existing row is shown and not posted (remove the member and add the other)."""
    _, client = signed_in("Administrators")
    url = reverse("admin:tenants_tenant_change", args=[world.alpha.pk])
    formset = next(
        inline.formset
        for inline in client.get(url).context["inline_admin_formsets"]
        if inline.formset.prefix == "memberships"
    )
    assert all(form.fields["user"].disabled for form in formset.initial_forms)


def test_no_one_deletes_a_tenant_it_is_closed_instead(world: World):
    _, client = signed_in("Administrators")
    delete = reverse("admin:tenants_tenant_delete", args=[world.alpha.pk])
    assert client.get(delete).status_code == 403
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="delete_selected"' not in page
    assert Tenant.objects.filter(pk=world.alpha.pk).exists()
