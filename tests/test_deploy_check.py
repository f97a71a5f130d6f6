"""Production settings: `check --deploy` is silent with the documented variables, plain
http is redirected (except the probes), HSTS is sent, and only a trusted proxy may say a
request came over https. The transport behaviour is tested through a real gunicorn,
because gunicorn is what decides whose X-Forwarded-Proto counts."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from cryptography.fernet import Fernet

from creditguard.settings import BASE_DIR
from tests.factories import TenantFactory

GUNICORN = str(BASE_DIR / ".venv" / "bin" / "gunicorn")
# Everything a production deployment sets (README, "Configuration").
PRODUCTION = {
    "CREDITGUARD_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "ALLOWED_HOSTS": "creditguard.example.com,127.0.0.1",
    "CSRF_TRUSTED_ORIGINS": "https://creditguard.example.com",
    "WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode(),
}
ENVIRONMENT_VARIABLES = {
    *PRODUCTION,
    "DEBUG",
    "FORWARDED_ALLOW_IPS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "DJANGO_SETTINGS_MODULE",
}


def environment(**env: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    return {**inherited, **env}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=environment(**env),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def security_settings(**env: str) -> dict[str, object]:
    names = [
        "SECURE_SSL_REDIRECT",
        "SECURE_REDIRECT_EXEMPT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        "TRUSTED_PROXIES",
        "CSRF_TRUSTED_ORIGINS",
    ]
    script = (
        "import json; from creditguard import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {names!r}}}))"
    )
    result = run("-c", script, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_is_silent_with_the_documented_production_variables():
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_defaults_to_https_only_with_hsts():
    values = security_settings(**PRODUCTION)
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://creditguard.example.com"]


def test_hsts_redirect_and_proxies_come_from_the_environment():
    values = security_settings(
        **PRODUCTION,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="true",
        FORWARDED_ALLOW_IPS="10.0.0.2,10.1.0.0/16",
    )
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["TRUSTED_PROXIES"] == ["10.0.0.2", "10.1.0.0/16"]


def test_development_neither_redirects_nor_sends_hsts():
    values = security_settings(CREDITGUARD_ENV="development")
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0


# --- through gunicorn ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(**env: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [GUNICORN, "creditguard.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--no-control-socket"],
        cwd=BASE_DIR,
        env=environment(**PRODUCTION, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=20)


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, allow_redirects=False, timeout=10)


def test_plain_http_is_redirected_to_https_except_the_probes():
    with gunicorn(FORWARDED_ALLOW_IPS="") as base:
        redirected = get(f"{base}/api/v1/key")
        probe = get(f"{base}/healthz")
    assert redirected.status_code == 301
    assert redirected.headers["Location"].startswith("https://127.0.0.1:")
    assert probe.status_code not in {301, 302}


def test_prometheus_scrapes_over_plain_http_with_the_metrics_token():
    token = secrets.token_urlsafe(32)
    with gunicorn(FORWARDED_ALLOW_IPS="", METRICS_TOKEN=token) as base:
        refused = get(f"{base}/metrics")
        scraped = get(f"{base}/metrics", Authorization=f"Bearer {token}")
    assert refused.status_code == 401
    assert scraped.status_code == 200
    assert "creditguard_http_requests_total" in scraped.text


def test_a_client_reaching_gunicorn_directly_cannot_claim_https():
    with gunicorn(FORWARDED_ALLOW_IPS="") as base:
        response = get(f"{base}/api/v1/key", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 301
    assert "Strict-Transport-Security" not in response.headers


def test_a_trusted_proxy_says_https_and_the_answer_carries_hsts():
    with gunicorn(FORWARDED_ALLOW_IPS="127.0.0.1") as base:
        response = get(f"{base}/api/v1/key", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 401  # reached the API: no key given
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_gunicorn_refuses_to_start_without_redis_in_one_line():
    env = environment(**PRODUCTION)
    del env["REDIS_URL"]
    port = free_port()
    result = subprocess.run(
        [GUNICORN, "creditguard.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--no-control-socket"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    # gunicorn reads the settings in its master (gunicorn.conf.py) and stops before any
    # worker boots: our one line, no traceback, no respawning.
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if "CreditGuard" in line]
    assert ours == [
        "CreditGuard will not start: production needs REDIS_URL (Redis for Celery and the cache)."
    ]
    assert "Booting worker" not in result.stderr


# --- the public home page ------------------------------------------------------------


def test_public_home_page_shows_no_tenant_count_or_database_vendor(db, client):
    TenantFactory.create_batch(3)
    page = client.get("/").content.decode()
    assert "CreditGuard" in page
    assert "3 tenants" not in page
    assert "postgresql" not in page.lower()
