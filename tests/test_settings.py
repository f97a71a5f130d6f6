"""Production refuses to start with a missing or development secret key, or without
Redis — with one clear line on stderr, not a traceback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from creditguard.settings import BASE_DIR


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "CREDITGUARD_ENV", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


SECRET = secrets.token_urlsafe(50)
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Set throughout, so that each case is refused for the one variable it leaves out.
WEBHOOK_KEYS = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CREDITGUARD_ENV": "production", "REDIS_URL": REDIS}, "SECRET_KEY"),
        (
            {
                "CREDITGUARD_ENV": "production",
                "REDIS_URL": REDIS,
                "SECRET_KEY": "dev-insecure-creditguard-secret-key-change-me",
            },
            "SECRET_KEY",
        ),
        (
            {"CREDITGUARD_ENV": "production", "REDIS_URL": REDIS, "SECRET_KEY": "short"},
            "SECRET_KEY",
        ),
        ({"CREDITGUARD_ENV": "production", "SECRET_KEY": SECRET}, "REDIS_URL"),
        ({"CREDITGUARD_ENV": "staging"}, "CREDITGUARD_ENV"),
        # A typo in a switch must not quietly mean "off".
        (
            {
                "CREDITGUARD_ENV": "production",
                "SECRET_KEY": SECRET,
                "REDIS_URL": REDIS,
                "SECURE_SSL_REDIRECT": "ture",
            },
            "SECURE_SSL_REDIRECT",
        ),
    ],
)
def test_bad_production_configuration_refuses_to_start_in_one_line(env, named):
    result = manage("check", WEBHOOK_SECRET_KEYS=WEBHOOK_KEYS, **env)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CreditGuard will not start: ")
    assert named in lines[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USAGE_RETENTION_MONTHS", "abc"),
        ("USAGE_RETENTION_MONTHS", "-3"),
        ("USAGE_DEDUPE_RETENTION_HOURS", "1.5"),
        ("USAGE_DEDUPE_RETENTION_HOURS", ""),
        ("REDIS_TIMEOUT_SECONDS", "fast"),
        ("WORKER_DB_LOCK_TIMEOUT_SECONDS", "-1"),
        ("PARTITION_LOCK_TIMEOUT_SECONDS", "2s"),
    ],
)
def test_a_number_that_is_not_one_refuses_to_start_in_one_line(name, value):
    """Counts, sizes and durations: a typo or a negative value names the variable."""
    result = manage("check", **{name: value})
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CreditGuard will not start: ")
    assert name in lines[0]
    assert repr(value) in lines[0]


@pytest.mark.parametrize("url", ["notaurl", "mysql://user@db.example/creditguard"])
def test_a_replica_url_that_is_no_postgres_database_refuses_to_start_in_one_line(url):
    result = manage("check", DATABASE_REPLICA_URL=url)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CreditGuard will not start: DATABASE_REPLICA_URL")


def test_a_number_in_the_environment_is_read():
    code = "from django.conf import settings as s; print(s.USAGE_RETENTION_MONTHS, s.REDIS_TIMEOUT_SECONDS)"
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        USAGE_RETENTION_MONTHS="6",
        REDIS_TIMEOUT_SECONDS="0.25",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["6", "0.25"]


def test_production_with_a_real_secret_and_redis_starts():
    result = manage(
        "check",
        CREDITGUARD_ENV="production",
        SECRET_KEY=SECRET,
        REDIS_URL=REDIS,
        WEBHOOK_SECRET_KEYS=WEBHOOK_KEYS,
        ALLOWED_HOSTS="example.com",
    )
    assert result.returncode == 0, result.stderr


def test_a_rotated_secret_key_still_reads_what_the_old_one_signed():
    from django.core import signing

    old, new = secrets.token_urlsafe(50), secrets.token_urlsafe(50)
    token = signing.dumps({"session": "kept"}, key=old)
    read = f"from django.core import signing; print(signing.loads({token!r})['session'])"
    rotated = manage("shell", "-c", read, SECRET_KEY=new, SECRET_KEY_FALLBACKS=old)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().splitlines()[-1] == "kept"
    without = manage("shell", "-c", read, SECRET_KEY=new)
    assert without.returncode != 0 and "BadSignature" in without.stderr
