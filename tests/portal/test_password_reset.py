"""Password reset by e-mail, with Django's views and the portal's templates; members only."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_member_resets_the_password_by_the_link_in_the_email(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = Client()
    response = client.post("/password-reset/", {"email": people.owner.email})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert (
        message.to == [people.owner.email] and "Reset your CreditGuard password" in message.subject
    )
    link = re.search(r"http://testserver(/password-reset/\S+/)", str(message.body)).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-new-portal-password-7", "new_password2": "a-new-portal-password-7"},
    )
    assert done.status_code == 302 and done["Location"] == "/password-reset/done/"
    logged_in = Client().post(
        "/login/", {"username": "olga", "password": "a-new-portal-password-7"}
    )
    assert logged_in.status_code == 302 and logged_in["Location"] == "/dashboard/"
    old = Client().post("/login/", {"username": "olga", "password": PASSWORD})
    assert old.status_code == 200


def test_no_link_goes_to_an_account_that_belongs_to_no_tenant(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = Client().post("/password-reset/", {"email": people.staff.email})
    # The same answer as for a member, so that nobody learns who has an account.
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert mail.outbox == []


def test_the_reset_email_is_in_the_persons_language(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = Client()
    client.cookies["django_language"] = "de"
    client.post("/password-reset/", {"email": people.owner.email})
    assert "Ihr CreditGuard-Passwort zurücksetzen" in mail.outbox[0].subject
