"""Developers (/developers/): API keys and webhook endpoints made, shown once, rotated,
tested, revoked and retried by admins and owners through the services; viewers read the
lists only; another tenant's ids answer 404; a fixed number of queries."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Delivery, WebhookEndpoint
from notifications.services.webhook_deliveries import webhook_endpoint_test
from notifications.services.webhooks import webhook_endpoint_create
from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_revoke
from tests.conftest import Api
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_an_admin_creates_a_key_shown_once_with_its_scopes(people):
    client = people.client(people.admin)
    response = client.post(
        "/developers/keys/", {"name": "Shop backend", "scopes": ["usage:write", "usage:read"]}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    api_key = ApiKey.objects.get(tenant=people.alpha, name="Shop backend")
    assert api_key.scopes == ["usage:read", "usage:write"]
    raw = response.context["new_key"].raw_key
    assert raw.startswith(f"cg_{api_key.prefix}_") and raw in response.content.decode()
    assert AuditEntry.objects.get(action="api_key.create").actor == people.admin
    # The key works, and is never shown again.
    assert Api(raw).get("/api/v1/balances").status_code == 200
    page = client.get("/developers/").content.decode()
    assert raw not in page and f"cg_{api_key.prefix}_…" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "scopes": ["usage:write"]}, "This field is required."),
        ({"name": "CRM"}, "Choose at least one scope."),
        ({"name": "CRM", "scopes": ["billing:read"]}, "Select a valid choice."),
    ],
)
def test_a_key_without_a_name_or_scope_is_refused_on_the_form(people, data, message):
    response = people.client(people.owner).post("/developers/keys/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiKey.objects.filter(tenant=people.alpha).exists()


def test_a_revoked_key_stops_working_and_is_listed_as_revoked(people):
    issued = api_key_create(tenant=people.alpha, name="Old", scopes=["usage:read"])
    client = people.client(people.owner)
    response = client.post(f"/developers/keys/{issued.api_key.prefix}/revoke/")
    assert response.status_code == 302
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None
    entry = AuditEntry.objects.get(action="api_key.revoke")
    assert (entry.actor, entry.reason) == (people.owner, "Revoked in the portal")
    assert Api(issued.raw_key).get("/api/v1/balances").status_code == 401
    assert "Revoked" in client.get("/developers/").content.decode()


def test_last_used_is_shown_once_the_key_is_used(people):
    issued = api_key_create(tenant=people.alpha, name="Used", scopes=["usage:read"])
    client = people.client(people.viewer)
    assert "Never" in client.get("/developers/").content.decode()
    Api(issued.raw_key).get("/api/v1/balances")
    row = client.get("/developers/").content.decode().split(f'id="key-{issued.api_key.prefix}"')
    assert "Never" not in row[1].split("</tr>")[0]


def test_a_viewer_reads_the_lists_but_cannot_act(people, receiver):
    api_key_create(tenant=people.alpha, name="Shop", scopes=["usage:read"])
    endpoint = webhook_endpoint_create(tenant=people.alpha, url=receiver.url)
    client = people.client(people.viewer)
    page = client.get("/developers/").content.decode()
    assert "Shop" in page and receiver.url in page
    assert "Create key" not in page and "Rotate secret" not in page
    assert endpoint.secret not in page
    prefix = ApiKey.objects.get(name="Shop").prefix
    for path in (
        "/developers/keys/",
        f"/developers/keys/{prefix}/revoke/",
        "/developers/webhooks/",
        f"/developers/webhooks/{endpoint.public_id}/rotate/",
        f"/developers/webhooks/{endpoint.public_id}/test/",
        f"/developers/webhooks/{endpoint.public_id}/delete/",
    ):
        assert (
            client.post(path, {"name": "x", "scopes": ["usage:read"], "url": "x"}).status_code
            == 403
        )
    assert ApiKey.objects.get(prefix=prefix).revoked_at is None
    assert not Delivery.objects.exists()


def test_another_tenants_key_endpoint_and_delivery_answer_404(people, receiver):
    theirs = api_key_create(tenant=people.beta, name="Beta", scopes=["usage:read"]).api_key
    endpoint = webhook_endpoint_create(tenant=people.beta, url=receiver.url)
    delivery = webhook_endpoint_test(tenant=people.beta, public_id=endpoint.public_id)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    client = people.client(people.owner)
    for path in (
        f"/developers/keys/{theirs.prefix}/revoke/",
        f"/developers/webhooks/{endpoint.public_id}/rotate/",
        f"/developers/webhooks/{endpoint.public_id}/test/",
        f"/developers/webhooks/{endpoint.public_id}/delete/",
        f"/developers/webhooks/{uuid.uuid4()}/test/",
        f"/developers/deliveries/{delivery.pk}/retry/",
    ):
        assert client.post(path).status_code == 404, path
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert Delivery.objects.get(pk=delivery.pk).status == "failed"
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).deleted_at is None


def test_an_endpoint_is_added_with_its_secret_shown_once(people, receiver):
    client = people.client(people.admin)
    response = client.post("/developers/webhooks/", {"url": receiver.url})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint = WebhookEndpoint.objects.get(tenant=people.alpha)
    assert endpoint.secret in response.content.decode()
    assert endpoint.secret not in client.get("/developers/").content.decode()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "This field is required."),
        ("ftp://example.com/x", "Enter an absolute URL starting with https://."),
        ("https://user:pw@example.com/x", "Leave user name and password out of the URL."),
        ("https://127.0.0.1/hooks", "its host must resolve to public internet addresses only"),
    ],
)
def test_an_endpoint_that_may_not_receive_events_is_refused_on_the_form(people, url, message):
    response = people.client(people.admin).post("/developers/webhooks/", {"url": url})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotating_shows_the_new_secret_once(people, receiver):
    endpoint = webhook_endpoint_create(tenant=people.alpha, url=receiver.url)
    old = endpoint.secret
    response = people.client(people.owner).post(
        f"/developers/webhooks/{endpoint.public_id}/rotate/"
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    page = response.content.decode()
    assert endpoint.secret in page and old not in page


def test_a_test_event_is_delivered_and_listed_and_a_failed_one_retried(people, receiver):
    endpoint = webhook_endpoint_create(tenant=people.alpha, url=receiver.url)
    client = people.client(people.admin)
    assert client.post(f"/developers/webhooks/{endpoint.public_id}/test/").status_code == 302
    delivery = Delivery.objects.get(endpoint=endpoint)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED,
        attempts=len(django_settings.DELIVERY_RETRY_DELAYS) + 1,
        last_error="HTTP 503",
    )
    page = client.get("/developers/").content.decode()
    assert "Test event" in page and "HTTP 503 from the receiver." in page and "Retry" in page
    assert client.post(f"/developers/deliveries/{delivery.pk}/retry/").status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    # Retrying what is not failed says so, and changes nothing.
    response = client.post(f"/developers/deliveries/{delivery.pk}/retry/", follow=True)
    assert "Only a failed delivery" in response.content.decode()


def test_an_endpoint_is_deleted(people, receiver):
    endpoint = webhook_endpoint_create(tenant=people.alpha, url=receiver.url)
    client = people.client(people.admin)
    assert client.post(f"/developers/webhooks/{endpoint.public_id}/delete/").status_code == 302
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).deleted_at is not None
    assert receiver.url not in client.get("/developers/").content.decode()


def test_the_guide_uses_the_tenants_channels_and_key_prefix(people):
    writer = api_key_create(tenant=people.alpha, name="Writer", scopes=["usage:write"]).api_key
    page = people.client(people.viewer).get("/developers/").content.decode()
    for channel in Channel.objects.filter(active=True):
        assert f"<code>{channel.code}</code>" in page
    assert f"cg_{writer.prefix}_&lt;secret&gt;" in page
    assert f"{django_settings.PUBLIC_BASE_URL.rstrip('/')}/api/v1/usage-events" in page
    assert "/api/v1/authorizations" in page


@pytest.mark.parametrize("history", [0, 3, 12])
def test_the_page_takes_a_fixed_number_of_queries_whatever_the_history(
    people, receiver, history, django_assert_num_queries
):
    endpoints = [
        webhook_endpoint_create(tenant=people.alpha, url=f"{receiver.url}/{n}")
        for n in range(min(history, 3))
    ]
    for n in range(history):
        issued = api_key_create(
            tenant=people.alpha, name=f"k{n}", scopes=["usage:read"], created_by=people.owner
        )
        if n % 2:
            api_key_revoke(api_key=issued.api_key)
        webhook_endpoint_test(tenant=people.alpha, public_id=endpoints[n % 3].public_id)
    client = people.client(people.owner)
    client.get("/developers/")  # the session is loaded once; count a page like any other
    # session, user, memberships; unread count; keys, endpoints, deliveries, channels
    with django_assert_num_queries(8):
        assert client.get("/developers/").status_code == 200
