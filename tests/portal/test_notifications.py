"""Notifications (/notifications/): the in-app list of GET /api/v1/notifications, with each
person's read state; and every link any notification carries opens a page that exists."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.template.loader import render_to_string
from django.utils import timezone, translation

from notifications.messages import render_message
from notifications.models import Notification, NotificationRead
from notifications.services.read import notifications_mark_read
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api
from tests.notifications.test_language import SAMPLES

pytestmark = pytest.mark.django_db


def notification(tenant, kind: str = "threshold_warning", minutes_ago: int = 0, **kwargs):
    return Notification.objects.create(
        public_id=uuid.uuid4(), tenant=tenant, kind=kind, dedupe_key=f"t:{uuid.uuid4()}",
        payload=SAMPLES[kind], created_at=timezone.now() - timedelta(minutes=minutes_ago),
        **kwargs,
    )  # fmt: skip


def every_kind(tenant) -> list[Notification]:
    return [notification(tenant, kind, minutes_ago=i) for i, kind in enumerate(SAMPLES)]


def test_the_list_shows_what_the_api_lists_newest_first(people):
    listed = every_kind(people.alpha)
    notification(people.alpha, covered_by=Notification.HISTORY, minutes_ago=99)
    notification(people.beta)
    api = Api(api_key_create(tenant=people.alpha, name="k", scopes=ALL_SCOPES).raw_key)
    api_ids = [n["id"] for n in api.get("/api/v1/notifications").json()["results"]]
    body = people.client(people.viewer).get("/notifications/").content.decode()
    page_ids = re.findall(r'id="n-([0-9a-f-]{36})"', body)
    assert page_ids == api_ids[: len(page_ids)] and len(page_ids) == len(listed)
    assert render_message(listed[0], language="en").subject in body


def test_the_list_is_in_the_persons_language(people):
    n = notification(people.alpha)
    client = people.client(people.viewer)
    client.post("/i18n/setlang/", {"language": "de", "next": "/notifications/"})
    body = client.get("/notifications/").content.decode()
    assert render_message(n, language="de").subject in body


def test_marking_read_is_per_person(people):
    first, second = notification(people.alpha), notification(people.alpha, minutes_ago=5)
    viewer = people.client(people.viewer)
    assert "unread" in viewer.get("/dashboard/").content.decode()
    response = viewer.post("/notifications/read/", {"id": str(first.public_id)})
    assert response.status_code == 302
    body = viewer.get("/notifications/?show=unread").content.decode()
    assert str(second.public_id) in body and str(first.public_id) not in body
    # The owner has read nothing.
    owner_body = people.client(people.owner).get("/notifications/?show=unread").content.decode()
    assert str(first.public_id) in owner_body
    viewer.post("/notifications/read/", {"all": "1"})
    assert NotificationRead.objects.filter(user=people.viewer).count() == 2
    assert "Nothing unread." in viewer.get("/notifications/?show=unread").content.decode()


def test_marking_read_twice_keeps_the_first_time(people):
    n = notification(people.alpha)
    earlier = timezone.now() - timedelta(hours=1)
    assert notifications_mark_read(tenant=people.alpha, user=people.viewer, now=earlier) == 1
    assert notifications_mark_read(tenant=people.alpha, user=people.viewer) == 0
    assert NotificationRead.objects.get(notification=n, user=people.viewer).read_at == earlier


def test_another_tenants_notification_cannot_be_marked_or_seen(people):
    foreign = notification(people.beta)
    client = people.client(people.owner)
    client.post("/notifications/read/", {"id": str(foreign.public_id)})
    assert not NotificationRead.objects.exists()
    assert str(foreign.public_id) not in client.get("/notifications/").content.decode()


def test_the_list_takes_a_fixed_number_of_queries(people, django_assert_num_queries):
    for _ in range(3):
        every_kind(people.alpha)
    client = people.client(people.viewer)
    client.get("/notifications/")
    # session, user, memberships; the unread count beside the menu; the page's count
    # and its rows (with their tenant and read state); the channel labels are in the
    # payloads; the alerts section's channels, rules in force, thresholds and recipients
    with django_assert_num_queries(10):
        assert client.get("/notifications/").status_code == 200


def links(text: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"<>]+", text)) | set(re.findall(r'href="([^"]+)"', text))


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_link_of_every_notification_opens_a_page(people, settings, language):
    """Each kind's e-mail (text and HTML), its in-app message, and the portal's list of
    them: every link resolves for a logged-in member."""
    people.alpha.language = language
    people.alpha.save()
    client = people.client(people.viewer)
    found: set[str] = set()
    for n in every_kind(people.alpha):
        message = render_message(n, language=language)
        context = {"tenant": people.alpha, "message": message, "language": language}
        with translation.override(language):
            for template in ("notifications/email.txt", "notifications/email.html"):
                found |= links(render_to_string(template, context))
        found |= links(" ".join(message.as_data()["lines"]))
    found |= links(client.get("/notifications/").content.decode())
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    paths = {link.removeprefix(base) for link in found if not link.startswith(("mailto:", "#"))}
    assert {"/dashboard/", "/policy/"} <= paths
    for path in sorted(paths):
        assert urlsplit(path).netloc == "", f"a link off the site: {path}"
        if path.startswith("/static/"):
            continue
        assert client.get(path).status_code == 200, path
