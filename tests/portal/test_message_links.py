"""Every link in every message a customer receives opens a page that exists (issue 11):
each notification kind's e-mail as the worker sends it (text and HTML) and in the in-app
list, in English and German, and the portal's own e-mails (password reset, invitation).
Each link is opened as its reader would open it — a member of the tenant, or nobody
signed in for the reset and invitation links — and must end at 200, never 404."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from math import ceil
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core import mail
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone, translation

from notifications.messages import render_message
from notifications.models import Delivery, Notification
from notifications.services.deliver import delivery_attempt
from portal.views.notifications import PAGE_SIZE
from tests.notifications.test_language import SAMPLES

pytestmark = pytest.mark.django_db

LANGUAGES = ["en", "de"]
TEST_HOST = "http://testserver"  # the host a request in the test client has


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("href", "src") and v]


def urls_in(body: str, *, html: bool = False) -> set[str]:
    """The URLs a reader can follow: written out in a text, or ``href``/``src`` in HTML."""
    found = {u.rstrip(".,;:!?)") for u in re.findall(r"https?://[^\s\"'<>]+", body)}
    if html:
        parser = _Links()
        parser.feed(body)
        found |= set(parser.found)
    return {u for u in found if not u.startswith(("mailto:", "#"))}


def site_path(url: str) -> str:
    """The path (and query) of a link to this site; a link anywhere else fails."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        origin = f"{parts.scheme}://{parts.netloc}"
        assert origin in (settings.PUBLIC_BASE_URL.rstrip("/"), TEST_HOST), f"off the site: {url}"
    assert parts.path.startswith("/"), f"not a path on the site: {url}"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_opens(client: Client, url: str):
    """GET ``url`` as ``client``: 200, directly or after redirects that stay on the site.
    A static file must be one the app serves."""
    path = site_path(url)
    if path.startswith(settings.STATIC_URL):
        assert finders.find(path.removeprefix(settings.STATIC_URL)), f"no such file: {url}"
        return None
    response = client.get(path, follow=True)
    for hop, _status in response.redirect_chain:
        site_path(hop)
    assert response.status_code == 200, f"{url} answers {response.status_code}"
    return response


def sent_email(notification: Notification) -> tuple[str, str, str]:
    """The notification's e-mail as the delivery worker sends it: subject, text, HTML."""
    now = timezone.now()
    delivery = Delivery.objects.create(
        notification=notification, transport=Delivery.Transport.EMAIL,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip
    mail.outbox.clear()
    assert delivery_attempt(delivery_id=delivery.pk) == Delivery.Status.DELIVERED
    (message,) = mail.outbox
    (html, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return str(message.subject), str(message.body), str(html)


@pytest.fixture
def outbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_every_kind_has_a_sample_payload():
    assert set(SAMPLES) == set(Notification.Kind.values)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_link_of_every_notification_opens_for_a_member(people, outbox, language):
    people.alpha.language = language
    people.alpha.save(update_fields=["language"])
    found: set[str] = set()
    for minutes, (kind, payload) in enumerate(SAMPLES.items()):
        n = Notification.objects.create(
            public_id=uuid.uuid4(), tenant=people.alpha, kind=kind, dedupe_key=f"t:{kind}",
            payload=payload, created_at=timezone.now() - timedelta(minutes=minutes),
        )  # fmt: skip
        subject, text, html = sent_email(n)
        assert render_message(n, language=language).subject in subject
        found |= urls_in(text) | urls_in(html, html=True)
    member = people.client(people.viewer)
    member.cookies["django_language"] = language
    pages = ceil(len(SAMPLES) / PAGE_SIZE)
    for page in range(1, pages + 1):
        listed = member.get(f"/notifications/?page={page}").content.decode()
        found |= urls_in(listed, html=True)
    paths = {site_path(url) for url in found}
    # What the messages point at, beside the menu: the overview, the policy, the requests.
    assert {"/dashboard/", "/policy/", "/limits/requests/"} <= paths
    for url in sorted(found):
        assert_opens(member, url)


@pytest.mark.parametrize(("language", "heading"), [("en", "Choose a new password"),
                                                   ("de", "Neues Passwort wählen")])  # fmt: skip
def test_the_password_reset_link_opens_the_form_for_nobody_signed_in(
    people, outbox, language, heading
):
    anonymous = Client()
    anonymous.cookies["django_language"] = language
    assert_opens(anonymous, "/password-reset/")
    anonymous.post("/password-reset/", {"email": people.owner.email})
    (message,) = mail.outbox
    (link,) = urls_in(str(message.body))
    assert "/password-reset/" in link
    assert heading in assert_opens(anonymous, link).content.decode()
    assert "Log in" in assert_opens(Client(), "/login/").content.decode()


@pytest.mark.parametrize(("owner", "heading"), [("owner", "Join Alpha GmbH"),
                                                ("beta_owner", "Beta AG beitreten")])  # fmt: skip
def test_the_invitation_link_opens_the_join_page(people, outbox, owner, heading):
    people.client(getattr(people, owner)).post(
        "/team/invite/", {"email": "nina@example.com", "role": "viewer"}
    )
    (message,) = mail.outbox
    (link,) = urls_in(str(message.body))
    assert heading in assert_opens(Client(), link).content.decode()


def test_a_broken_link_is_found(people):
    member = people.client(people.viewer)
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    for broken in (f"{base}/dashbaord/", "/credits/packs/1/", "https://elsewhere.example/dashboard/",
                   "/static/portal/missing.css"):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_opens(member, broken)
    # A message whose link were wrong is caught by the same reading of the e-mail.
    n = Notification.objects.create(
        public_id=uuid.uuid4(), tenant=people.alpha, kind="policy_change", dedupe_key="t:x",
        payload=SAMPLES["policy_change"], created_at=timezone.now(),
    )  # fmt: skip
    message = replace(render_message(n, language="en"), policy_url=f"{base}/policies/")
    with translation.override("en"):
        html = render_to_string(
            "notifications/email.html", {"tenant": people.alpha, "message": message}
        )
    with pytest.raises(AssertionError, match="/policies/ answers 404"):
        for url in sorted(urls_in(html, html=True)):
            assert_opens(member, url)


@pytest.mark.parametrize(("language", "words"), [("en", "on the fair use policy page"),
                                                 ("de", "auf der Seite „Fair-Use-Richtlinie“")])  # fmt: skip
def test_the_policy_notice_sends_its_reader_to_the_policy_page(people, outbox, language, words):
    """A policy is acknowledged on /policy/, not on the overview: the notice says so, and
    its link in the list and in the e-mail opens that page with the acknowledge button
    (issue 11)."""
    people.alpha.language = language
    people.alpha.save(update_fields=["language"])
    n = Notification.objects.create(
        public_id=uuid.uuid4(), tenant=people.alpha, kind="policy_change", dedupe_key="t:p",
        payload=SAMPLES["policy_change"], created_at=timezone.now(),
    )  # fmt: skip
    message = render_message(n, language=language)
    assert words in message.lines[0] and "dashboard" not in message.lines[0]
    _subject, text, html = sent_email(n)
    assert words in text and words in html
    assert "/policy/" in {site_path(url) for url in urls_in(text) | urls_in(html, html=True)}
    member = people.client(people.owner)
    member.cookies["django_language"] = language
    listed = member.get("/notifications/").content.decode()
    item = re.search(rf'<li class="list-item[^"]*" id="n-{n.public_id}">.*?</li>', listed, re.S)[0]
    assert urls_in(item, html=True) == {"/policy/"}
    assert_opens(member, "/policy/")
