"""The staff login locks an account at an address after AXES_FAILURE_LIMIT wrong passwords
(django-axes), for AXES_COOLOFF_MINUTES. Per account *and* address, so that nobody can lock
staff out from elsewhere; the address is the one a trusted proxy forwards."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

ATTACKER = "203.0.113.7"
OFFICE = "198.51.100.20"
PASSWORD = "staff-password-1"  # noqa: S105


@pytest.fixture(autouse=True)
def staff(db, settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("sam", "sam@creditguard.example", PASSWORD)
    User.objects.create_superuser("kim", "kim@creditguard.example", PASSWORD)


def log_in(username: str, password: str, address: str = ATTACKER, **headers: Any):
    """One attempt on the admin login form from `address`, in a fresh browser."""
    return Client().post(
        "/admin/login/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
        **headers,
    )


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def fail(times: int, username: str = "sam", address: str = ATTACKER, **headers: Any) -> None:
    for _ in range(times):
        assert not logged_in(log_in(username, "wrong password", address, **headers))


def test_five_wrong_passwords_lock_the_account_at_that_address(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    fail(5)
    response = log_in("sam", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "sessionid" not in response.cookies


def test_four_wrong_passwords_do_not_lock():
    fail(4)
    assert logged_in(log_in("sam", PASSWORD))


def test_another_account_from_the_same_address_still_logs_in():
    fail(5)
    assert logged_in(log_in("kim", PASSWORD))


def test_the_locked_account_still_logs_in_from_another_address():
    # Why per account *and* address: an attacker cannot lock staff out of their own desk.
    fail(5)
    assert logged_in(log_in("sam", PASSWORD, OFFICE))


def test_the_lock_lifts_after_the_cool_off():
    with time_machine.travel(dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC), tick=False):
        fail(5)
    with time_machine.travel(dt.datetime(2026, 11, 24, 10, 14, tzinfo=dt.UTC), tick=False):
        assert log_in("sam", PASSWORD).status_code == 429
    with time_machine.travel(dt.datetime(2026, 11, 24, 10, 16, tzinfo=dt.UTC), tick=False):
        assert logged_in(log_in("sam", PASSWORD))


def test_a_successful_login_resets_the_count():
    fail(4)
    assert logged_in(log_in("sam", PASSWORD))
    fail(4)
    assert logged_in(log_in("sam", PASSWORD))


def test_a_client_sent_x_forwarded_for_does_not_escape_the_lock(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    fail(5)
    response = log_in("sam", PASSWORD, HTTP_X_FORWARDED_FOR=OFFICE)
    assert response.status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_is_locked_not_the_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    fail(5, address="10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER)
    assert log_in("sam", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    assert logged_in(log_in("sam", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=OFFICE))
