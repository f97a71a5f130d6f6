"""Webhook signing secrets: encrypted at rest (Fernet under WEBHOOK_SECRET_KEYS), keys
rotate, and the secret is shown once by the API and never by the admin, repr or logs."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.forms import modelform_factory
from django.test import Client
from django.urls import reverse

from notifications.models import WebhookEndpoint
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from tests.conftest import World
from tests.notifications.receiver import Receiver

URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def private_addresses(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


def stored_rows() -> str:
    """Every column of every endpoint row, as PostgreSQL stores it."""
    table = WebhookEndpoint._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608 - our table
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_secret_is_stored_encrypted_and_shown_once(world: World):
    created = world.alice_api.post("/api/v1/webhook-endpoints", {"url": URL})
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    rows = stored_rows()
    assert secret not in rows and secret.removeprefix("whsec_") not in rows
    assert WebhookEndpoint.objects.get().secret == secret


def test_secrets_survive_a_key_rotation(world: World, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [old_key]
    secret = webhook_endpoint_create(tenant=world.alpha, url=URL).secret
    token_before = WebhookEndpoint.objects.get().secret_encrypted

    settings.WEBHOOK_SECRET_KEYS = [new_key, old_key]
    assert WebhookEndpoint.objects.get().secret == secret
    call_command("rotate_webhook_secrets_key", verbosity=0)

    settings.WEBHOOK_SECRET_KEYS = [new_key]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret_encrypted != token_before
    assert endpoint.secret == secret


def test_a_removed_key_is_a_clear_configuration_error(world: World, settings):
    from django.core.exceptions import ImproperlyConfigured

    webhook_endpoint_create(tenant=world.alpha, url=URL)
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_SECRET_KEYS"):
        WebhookEndpoint.objects.get().secret  # noqa: B018 - the property decrypts


def test_the_secret_is_not_in_admin_forms_or_pages(world: World):
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=URL)
    secret, token = endpoint.secret, WebhookEndpoint.objects.get().secret_encrypted
    form_fields = modelform_factory(WebhookEndpoint, fields="__all__").base_fields
    assert not {"secret", "secret_encrypted"} & set(form_fields)

    user = User.objects.create_superuser(username="root", password="x", email="r@example.com")
    client = Client()
    client.force_login(user)
    pages = [reverse("admin:index"), reverse("admin:tenants_tenant_change", args=[world.alpha.pk])]
    if WebhookEndpoint in admin.site._registry:
        pages += [
            reverse("admin:notifications_webhookendpoint_changelist"),
            reverse("admin:notifications_webhookendpoint_change", args=[endpoint.pk]),
        ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        content = response.content.decode()
        assert secret not in content and token not in content, page


def test_the_secret_is_not_in_repr_or_logs(world: World, settings, caplog):
    receiver = Receiver(status=500).start()
    try:
        endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
        world.alpha.contact_email = ""
        world.alpha.save()
        notify(tenant=world.alpha, kind="limit_reached", dedupe_key="k", payload={})
        with caplog.at_level(logging.DEBUG):
            assert [delivery_attempt(delivery_id=pk) for pk in deliveries_due()] == ["pending"]
    finally:
        receiver.stop()
    secret = endpoint.secret
    assert secret not in repr(endpoint) and secret not in str(endpoint)
    assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text


# serialized_rollback, as the other transactional tests: the flush after it then leaves
# the database as they expect (no post_migrate rows created twice).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_encrypts_existing_secrets_and_reverses(world: World):
    secret = webhook_endpoint_create(tenant=world.alpha, url=URL).secret
    executor = MigrationExecutor(connection)
    # Every app's leaf: going back unapplies any later migration that depends on these.
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("notifications", "0001_initial")])
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM notifications_webhookendpoint")
            assert cursor.fetchall() == [(secret,)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert secret not in stored_rows()
    assert WebhookEndpoint.objects.get().secret == secret
