"""Who gets into the portal, as which tenant, in which language."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import Membership
from tests.factories import MembershipFactory
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def log_in(username: str, password: str = PASSWORD, client: Client | None = None, **extra):
    client = client or Client()
    return client, client.post("/login/", {"username": username, "password": password}, **extra)


def test_a_member_logs_in_and_lands_on_the_overview(people):
    client, response = log_in("olga")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "Alpha GmbH" in page.content.decode()


def test_a_wrong_password_is_refused_on_the_login_page(people):
    _, response = log_in("olga", "wrong")
    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()


def test_a_staff_account_that_is_no_member_is_refused(people):
    client, response = log_in("sam")
    assert response.status_code == 200
    assert "does not belong to any customer account" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_a_staff_session_from_the_console_does_not_open_the_portal(people):
    assert people.client(people.staff).get("/dashboard/").status_code == 403


def test_anonymous_people_are_sent_to_the_login_with_their_page(people):
    response = Client().get("/policy/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/policy/"


def test_logging_out_takes_a_post_and_ends_the_session(people):
    client = people.client(people.owner)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/dashboard/").status_code == 302


def test_five_wrong_passwords_lock_the_portal_login_for_that_account_and_address(people):
    for _ in range(4):
        _, response = log_in("olga", "wrong", REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 200
    # The fifth wrong password locks at once.
    assert log_in("olga", "wrong", REMOTE_ADDR="203.0.113.7")[1].status_code == 429
    _, response = log_in("olga", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body and "CreditGuard" in body
    assert "sessionid" not in response.cookies
    # The same account from another address, and another account from this one, still work.
    assert log_in("olga", REMOTE_ADDR="198.51.100.20")[1].status_code == 302
    assert log_in("adam", REMOTE_ADDR="203.0.113.7")[1].status_code == 302


def test_a_person_in_two_tenants_switches_between_them(people):
    client = people.client(people.both)
    assert "Alpha GmbH" in client.get("/dashboard/").content.decode()
    response = client.post("/account/switch/", {"tenant": "beta", "next": "/policy/"})
    assert response.status_code == 302 and response["Location"] == "/policy/"
    page = client.get("/dashboard/").content.decode()
    assert '<option value="beta" selected>Beta AG</option>' in page


def test_a_new_session_opens_where_the_persons_role_is_highest(people):
    # A viewer of Alpha GmbH (first by name) who owns Beta AG opens Beta AG.
    MembershipFactory.create(tenant=people.alpha, user=people.beta_owner, role="viewer")
    client, response = log_in("bert")
    assert response["Location"] == "/dashboard/"
    page = client.get("/dashboard/").content.decode()
    assert '<option value="beta" selected>Beta AG</option>' in page
    # Equal roles: by name (both is admin of Alpha, viewer of Beta; make it Beta's admin).
    Membership.objects.filter(user=people.both, tenant=people.beta).update(role="admin")
    client, _ = log_in("both")
    page = client.get("/dashboard/").content.decode()
    assert '<option value="alpha" selected>Alpha GmbH</option>' in page


def test_switching_to_a_tenant_one_is_not_a_member_of_is_not_found(people):
    client = people.client(people.owner)
    assert client.post("/account/switch/", {"tenant": "beta"}).status_code == 404


def test_switching_never_redirects_off_site(people):
    client = people.client(people.both)
    response = client.post("/account/switch/", {"tenant": "beta", "next": "https://evil.example/"})
    assert response["Location"] == "/dashboard/"


def test_forms_need_the_csrf_token(people):
    client = people.client(people.owner, enforce_csrf_checks=True)
    assert client.post("/policy/", {}).status_code == 403
    assert client.post("/logout/").status_code == 403
    page = client.get("/policy/")
    token = page.cookies["csrftoken"].value
    assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302


def test_the_page_follows_the_tenants_language(people):
    people.alpha.language = "de"
    people.alpha.save()
    page = people.client(people.owner).get("/dashboard/").content.decode()
    assert '<html lang="de"' in page and "Übersicht" in page


def test_the_person_switches_the_language(people):
    client = people.client(people.owner)
    response = client.post("/i18n/setlang/", {"language": "de", "next": "/dashboard/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    page = client.get("/dashboard/").content.decode()
    assert '<html lang="de"' in page and "Übersicht" in page
    client.post("/i18n/setlang/", {"language": "en", "next": "/dashboard/"})
    assert '<html lang="en"' in client.get("/dashboard/").content.decode()


def test_the_support_contact_is_on_every_page(people, settings):
    client = people.client(people.viewer)
    for path in ("/dashboard/", "/policy/"):
        assert settings.SUPPORT_CONTACT in client.get(path).content.decode()
    assert settings.SUPPORT_CONTACT in Client().get("/login/").content.decode()


def test_production_sends_the_portals_cookies_over_https_only():
    from tests.test_settings import REDIS, SECRET, WEBHOOK_KEYS, manage

    result = manage(
        "shell", "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.LANGUAGE_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY)",
        CREDITGUARD_ENV="production", SECRET_KEY=SECRET, REDIS_URL=REDIS,
        WEBHOOK_SECRET_KEYS=WEBHOOK_KEYS, ALLOWED_HOSTS="example.com",
    )  # fmt: skip
    assert result.stdout.split()[-4:] == ["True", "True", "True", "True"], result.stderr
