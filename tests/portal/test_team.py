"""Team (/team/): members and roles; owners invite, change roles and remove members through
the tenants services; the invitation link is accepted once."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from creditguard.models import AuditEntry
from tenants.invitations import invitation_create
from tenants.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).replace(
        "\u00a0", " "
    )


def link_token(response) -> str:
    return re.search(r"/invitations/([A-Za-z0-9_-]+)/", text(response))[1]


def test_every_member_sees_the_team_and_only_owners_manage_it(people):
    page = people.client(people.viewer).get("/team/")
    assert page.status_code == 200
    body = text(page)
    assert "olga" in body and "adam" in body and "vera" in body and "bert" not in body
    assert "Invite someone" not in body and "/team/invite/" not in page.content.decode()
    assert "Invite someone" in text(people.client(people.owner).get("/team/"))


def test_an_owner_invites_by_email_and_the_link_is_accepted_once(people):
    owner = people.client(people.owner)
    response = owner.post("/team/invite/", {"email": "nina@example.com", "role": "admin"},
                          follow=True)  # fmt: skip
    assert "Invitation sent to nina@example.com" in text(response)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["nina@example.com"]
    token = link_token(response)
    assert f"/invitations/{token}/" in mail.outbox[0].body
    guest = Client()
    page = guest.get(f"/invitations/{token}/")
    assert page.status_code == 200 and "Join Alpha GmbH" in text(page)
    joined = guest.post(
        f"/invitations/{token}/",
        {"username": "nina", "password": "a-long-pass-9", "password_again": "a-long-pass-9"},
    )
    assert joined.status_code == 302 and joined["Location"] == "/dashboard/"
    assert Membership.objects.get(user__username="nina", tenant=people.alpha).role == "admin"
    assert guest.get("/dashboard/").status_code == 200
    assert Client().get(f"/invitations/{token}/").status_code == 404


def test_a_signed_in_person_joins_with_one_click(people):
    issued = invitation_create(tenant=people.alpha, email="b@example.com", role="viewer",
                               actor=people.owner)  # fmt: skip
    client = people.client(people.beta_owner)
    response = client.post(f"/invitations/{issued.token}/")
    assert response.status_code == 302
    assert Membership.objects.filter(user=people.beta_owner, tenant=people.alpha).exists()
    assert "Alpha GmbH" in text(client.get("/dashboard/"))


def test_mismatched_or_weak_passwords_create_nobody(people):
    issued = invitation_create(tenant=people.alpha, email="b@example.com", role="viewer",
                               actor=people.owner)  # fmt: skip
    for first, again in (("a-long-pass-9", "other-pass-99"), ("123", "123")):
        response = Client().post(
            f"/invitations/{issued.token}/",
            {"username": "nina", "password": first, "password_again": again},
        )
        assert response.status_code == 400
    assert not User.objects.filter(username="nina").exists()
    assert Invitation.objects.get().accepted_at is None


def test_an_unknown_link_is_404(db):
    assert Client().get("/invitations/nonsense/").status_code == 404


def test_admins_and_viewers_cannot_invite(people):
    for user in (people.admin, people.viewer):
        response = people.client(user).post("/team/invite/", {"email": "x@example.com",
                                                              "role": "owner"})  # fmt: skip
        assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_a_bad_address_is_a_message_not_a_500(people):
    response = people.client(people.owner).post(
        "/team/invite/", {"email": "nope", "role": "admin"}, follow=True
    )
    assert response.status_code == 200 and "Enter a valid e-mail address" in text(response)


def test_an_owner_changes_a_role_and_removes_a_member_audited(people):
    owner = people.client(people.owner)
    adam = Membership.objects.get(user=people.admin, tenant=people.alpha)
    assert owner.post(f"/team/members/{adam.pk}/role/", {"role": "viewer"}).status_code == 302
    adam.refresh_from_db()
    assert adam.role == "viewer"
    assert owner.post(f"/team/members/{adam.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=adam.pk).exists()
    actions = set(AuditEntry.objects.filter(actor=people.owner).values_list("action", flat=True))
    assert {"membership.change_role", "membership.remove"} <= actions


def test_the_last_owner_cannot_be_removed_or_demoted(people):
    owner = people.client(people.owner)
    olga = Membership.objects.get(user=people.owner, tenant=people.alpha)
    response = owner.post(f"/team/members/{olga.pk}/remove/", follow=True)
    assert "The last owner cannot be removed" in text(response)
    owner.post(f"/team/members/{olga.pk}/role/", {"role": "viewer"})
    olga.refresh_from_db()
    assert olga.role == "owner"


def test_another_tenants_member_and_invitation_are_404(people):
    bert = Membership.objects.get(user=people.beta_owner)
    owner = people.client(people.owner)
    assert owner.post(f"/team/members/{bert.pk}/remove/").status_code == 404
    assert owner.post(f"/team/members/{bert.pk}/role/", {"role": "viewer"}).status_code == 404
    issued = invitation_create(tenant=people.beta, email="x@example.com", role="viewer",
                               actor=people.beta_owner)  # fmt: skip
    url = f"/team/invitations/{issued.invitation.pk}/withdraw/"
    assert owner.post(url).status_code == 404
    assert people.client(people.beta_owner).post(url).status_code == 302
    assert Invitation.objects.get().revoked_at is not None


def test_admins_cannot_change_roles_or_remove(people):
    vera = Membership.objects.get(user=people.viewer)
    admin = people.client(people.admin)
    assert admin.post(f"/team/members/{vera.pk}/role/", {"role": "owner"}).status_code == 403
    assert admin.post(f"/team/members/{vera.pk}/remove/").status_code == 403


@pytest.mark.parametrize("invitations", [0, 5])
def test_the_page_takes_a_fixed_number_of_queries(people, invitations, django_assert_num_queries):
    for n in range(invitations):
        invitation_create(tenant=people.alpha, email=f"p{n}@example.com", role="viewer",
                          actor=people.owner)  # fmt: skip
    client = people.client(people.owner)
    client.get("/team/")
    # session, user, memberships with tenants; members with their users, open
    # invitations; the unread notifications beside the menu
    with django_assert_num_queries(6):
        assert client.get("/team/").status_code == 200


def test_in_german(people):
    people.alpha.language = "de"
    people.alpha.save()
    body = text(people.client(people.owner).get("/team/"))
    assert "Jemanden einladen" in body


@pytest.mark.parametrize("path", ["/team/", "/credits/"])
def test_anonymous_people_log_in_first_and_staff_who_are_no_members_are_refused(people, path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"
    assert people.client(people.staff).get(path).status_code == 403


def test_the_only_owner_is_offered_no_action_the_service_refuses(people):
    """The only owner's row has no role change and no Remove, and says why (issue 11); a
    second owner brings both back to every owner's row."""
    olga = Membership.objects.get(user=people.owner, tenant=people.alpha)
    adam = Membership.objects.get(user=people.admin, tenant=people.alpha)
    owner = people.client(people.owner)
    page = owner.get("/team/").content.decode()
    row = re.search(rf'<tr id="member-{olga.pk}">.*?</tr>', page, re.S)[0]
    assert f"/team/members/{olga.pk}/remove/" not in page
    assert f"/team/members/{olga.pk}/role/" not in page
    assert "The account's only owner" in text_of(row)
    assert f"/team/members/{adam.pk}/remove/" in page and f"/team/members/{adam.pk}/role/" in page
    adam.role = Membership.Role.OWNER
    adam.save(update_fields=["role"])
    page = owner.get("/team/").content.decode()
    assert f"/team/members/{olga.pk}/remove/" in page and f"/team/members/{olga.pk}/role/" in page
    assert "only owner" not in page
    assert owner.post(f"/team/members/{olga.pk}/role/", {"role": "admin"}).status_code == 302
    olga.refresh_from_db()
    assert olga.role == "admin"


def test_the_only_owners_note_in_german(people):
    people.alpha.language = "de"
    people.alpha.save()
    assert "einzige Inhaber" in text(people.client(people.owner).get("/team/"))


def text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))
