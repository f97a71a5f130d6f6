"""Webhook signing secrets are stored encrypted (Fernet under WEBHOOK_SECRET_KEYS).

Existing plaintext secrets are encrypted with the first key; reversed, they are
decrypted back into the plaintext column.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import migrations, models


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.WEBHOOK_SECRET_KEYS])


def encrypt_secrets(apps: Any, schema_editor: Any) -> None:
    WebhookEndpoint = apps.get_model("notifications", "WebhookEndpoint")  # noqa: N806
    fernet = _fernet()
    for endpoint in WebhookEndpoint.objects.using(schema_editor.connection.alias).iterator():
        token = fernet.encrypt(endpoint.secret_encrypted.encode()).decode()
        WebhookEndpoint.objects.using(schema_editor.connection.alias).filter(
            pk=endpoint.pk
        ).update(secret_encrypted=token)


def decrypt_secrets(apps: Any, schema_editor: Any) -> None:
    WebhookEndpoint = apps.get_model("notifications", "WebhookEndpoint")  # noqa: N806
    fernet = _fernet()
    for endpoint in WebhookEndpoint.objects.using(schema_editor.connection.alias).iterator():
        plaintext = fernet.decrypt(endpoint.secret_encrypted.encode()).decode()
        WebhookEndpoint.objects.using(schema_editor.connection.alias).filter(
            pk=endpoint.pk
        ).update(secret_encrypted=plaintext)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [
        migrations.RenameField(
            model_name="webhookendpoint", old_name="secret", new_name="secret_encrypted"
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret_encrypted",
            field=models.TextField(editable=False),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
    ]
