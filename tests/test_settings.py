"""Production refuses to start with a missing or development secret key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from creditguard.settings import BASE_DIR


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CREDITGUARD_ENV"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import creditguard.settings"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CREDITGUARD_ENV": "production"},
        {
            "CREDITGUARD_ENV": "production",
            "SECRET_KEY": "dev-insecure-creditguard-secret-key-change-me",
        },
        {"CREDITGUARD_ENV": "production", "SECRET_KEY": "short"},
        {"CREDITGUARD_ENV": "staging"},
    ],
)
def test_bad_production_configuration_refuses_to_start(env):
    result = load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_production_with_a_real_secret_starts():
    result = load_settings(
        CREDITGUARD_ENV="production", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr
