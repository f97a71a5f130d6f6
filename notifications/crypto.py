"""Webhook signing secrets at rest: Fernet tokens (AES-128-CBC + HMAC-SHA256, from the
maintained ``cryptography`` package) under ``WEBHOOK_SECRET_KEYS``.

The first key encrypts, every key decrypts, so keys rotate without downtime: put a new
key first, run ``manage.py rotate_webhook_secrets_key`` (re-encrypts every secret with
it), then remove the old key.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.WEBHOOK_SECRET_KEYS))


def secret_encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A webhook secret does not decrypt with any key of WEBHOOK_SECRET_KEYS "
            "(was a key removed before rotate_webhook_secrets_key ran?)."
        ) from None


def secret_rotate(token: str) -> str:
    """The same secret encrypted with the first key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A webhook secret does not decrypt with any key of WEBHOOK_SECRET_KEYS."
        ) from None
