"""Read replicas through the real app: a primary and a streaming replica of the test's own
(tests/ops/replica_pair.py), two gunicorns pointed at both (DATABASE_URL,
DATABASE_REPLICA_URL), people signed in to the portal and a billing system with its key.

With the replica's replay paused, what the primary has since written is missing on the
replica only, so a page shows which one it read: the dashboard and the billing export
read the replica; a POST writes the primary, and the next pages of the person who sent
it read the primary (the pin) while a colleague's still read the replica; a gunicorn
allowed 1 s of lag reads the primary and counts it, also when the stream stalls while the
replica's WAL receiver still runs; a stopped replica is answered from
the primary without a 500."""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from creditguard.db_router import PIN_COOKIE
from tests.ops import replica_pair, stack
from tests.workers import free_port, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not replica_pair.available(), reason="PostgreSQL 15's server programs"),
]

PASSWORD = "replica-portal-password-1"  # noqa: S105
SEED = f"""
import json
from django.contrib.auth.models import User
from tenants.models import Membership
from tenants.services import api_key_create, membership_add, tenant_create

tenant = tenant_create(slug="replica-alpha", name="Replica Alpha", language="en",
                       time_zone="UTC")
for name, role in (("olga", Membership.Role.OWNER), ("adam", Membership.Role.ADMIN)):
    user = User.objects.create_user(name, f"{{name}}@alpha.example", "{PASSWORD}")
    membership_add(tenant=tenant, user=user, role=role, actor=None)
key = api_key_create(tenant=tenant, name="billing", scopes=["usage:write", "billing:read"])
print(json.dumps({{"key": key.raw_key}}))
"""
USED = re.compile(r'id="channel-sms".*?<dt>Used</dt><dd>([^<]+)</dd>', re.S)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Gunicorn:
    def __init__(self, name: str, env: dict[str, str], home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        metrics = home / f"metrics-{name}"
        metrics.mkdir()
        argv = [str(Path(sys.executable).parent / "gunicorn"), "creditguard.wsgi",
                "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{self.port}",
                "--workers", "1", "--threads", "2"]  # fmt: skip
        env = {**env, "HOME": str(home), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        self.process = stack.Process(f"gunicorn {name}", argv, env)

    def wait(self) -> None:
        wait_for(lambda: self.ready() or not self.process.alive(), 60, "gunicorn to answer")
        assert self.process.alive(), self.process.output()

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def fallbacks(self, reason: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=30).text
        match = re.search(
            rf'^creditguard_db_replica_fallbacks_total{{reason="{reason}"}} (\S+)$', text, re.M
        )
        return float(match.group(1)) if match else 0.0


class Person:
    """A browser: its own cookies, signed in to the portal."""

    def __init__(self, base: str, username: str) -> None:
        self.session = requests.Session()
        page = self.session.get(f"{base}/login/", timeout=30)
        token = CSRF.search(page.text)
        assert token, page.text[:500]
        answer = self.session.post(
            f"{base}/login/",
            data={"username": username, "password": PASSWORD,
                  "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{base}/login/"}, allow_redirects=False, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 302, answer.text[:500]
        # Signing in is a POST, which pins the person to the primary for a while; the
        # test starts where that pin has ended.
        self.unpin()

    def unpin(self) -> None:
        self.session.cookies.set(PIN_COOKIE, None)

    def pinned(self) -> bool:
        return PIN_COOKIE in self.session.cookies

    def get(self, url: str) -> requests.Response:
        response = self.session.get(url, timeout=30)
        assert response.status_code == 200, (url, response.status_code, response.text[:800])
        return response

    def used_sms(self, base: str) -> str:
        match = USED.search(self.get(f"{base}/dashboard/").text)
        assert match, "no SMS card on the dashboard"
        return match.group(1)

    def post_form(self, page_url: str, url: str, data: dict[str, str]) -> requests.Response:
        token = CSRF.search(self.get(page_url).text)
        assert token
        return self.session.post(
            url, data={**data, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": page_url}, allow_redirects=False, timeout=30,
        )  # fmt: skip


def ingest(base: str, key: str, event_id: str, quantity: int) -> None:
    response = requests.post(
        f"{base}/api/v1/usage-events",
        json={"events": [{"id": event_id, "channel": "sms", "quantity": quantity,
                          "occurred_at": datetime.now(UTC).isoformat()}]},
        headers={"Authorization": f"Bearer {key}"}, timeout=30,
    )  # fmt: skip
    assert response.status_code in (200, 201, 207), response.text
    assert not response.cookies.get(PIN_COOKIE)  # an API client is not pinned


def export_used(base: str, key: str, period: str) -> list[int]:
    response = requests.get(
        f"{base}/api/v1/billing/export",
        params={"period": period}, headers={"Authorization": f"Bearer {key}"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text[:800]
    return [row["used_units"] for row in response.json()["results"] if row["channel"] == "sms"]


@pytest.fixture
def pair() -> Iterator[replica_pair.Pair]:
    with replica_pair.replica_pair(seed=SEED) as pair:
        yield pair


@pytest.fixture
def home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cg-replica-web-") as directory:
        yield Path(directory)


def test_pages_read_the_replica_a_writer_reads_the_primary_and_a_lost_replica_is_not_a_500(
    pair: replica_pair.Pair, home: Path
) -> None:
    env = replica_pair.app_environment(
        DATABASE_URL=pair.primary.url(),
        DATABASE_REPLICA_URL=pair.replica.url(),
        DATABASE_CONN_MAX_AGE="60",
        DATABASE_REPLICA_PIN_SECONDS="30",
    )
    key = replica_pair.json_line(pair.seeded)["key"]
    # "Steady" measures the replica once an hour: its health, once known, holds, so what a
    # page reads follows from the pin and the failures alone. "Strict" measures at every
    # page and allows 1 s of lag.
    steady = Gunicorn("steady", {**env, "DATABASE_REPLICA_CHECK_SECONDS": "3600",
                                 "DATABASE_REPLICA_MAX_LAG_SECONDS": "3600"}, home)  # fmt: skip
    strict = Gunicorn("strict", {**env, "DATABASE_REPLICA_CHECK_SECONDS": "0",
                                 "DATABASE_REPLICA_MAX_LAG_SECONDS": "1"}, home)  # fmt: skip
    servers = [steady, strict]
    try:
        for server in servers:
            server.wait()
        run(pair, steady, strict, key)
    except BaseException:
        for server in servers:
            print(server.process.output(), file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.process.stop(timeout=30)


def run(pair: replica_pair.Pair, steady: Gunicorn, strict: Gunicorn, key: str) -> None:
    ingest(steady.url, key, "before-1", 1234)
    period = pair.primary.value("SELECT label FROM metering_billingperiod LIMIT 1")
    olga = Person(steady.url, "olga")
    adam = Person(steady.url, "adam")
    pair.wait_caught_up()
    assert olga.used_sms(steady.url) == "1,234"

    # Replay paused: what the primary writes from now on is missing on the replica.
    pair.replay_pause()
    ingest(steady.url, key, "after-1", 4321)
    balance = "SELECT used FROM metering_balance WHERE used > 0"
    assert pair.primary.value(balance) == 5555
    assert pair.replica.value(balance) == 1234

    # The dashboard and the billing export read the replica.
    assert olga.used_sms(steady.url) == "1,234"
    assert adam.used_sms(steady.url) == "1,234"
    assert export_used(steady.url, key, period) == [1234]
    csv = requests.get(
        f"{steady.url}/api/v1/billing/export",
        params={"period": period, "format": "csv"},
        headers={"Authorization": f"Bearer {key}"}, timeout=30,
    ).text  # fmt: skip
    assert ",1234," in csv and ",5555," not in csv

    # Olga adds an alert recipient: written on the primary only (replay is paused) ...
    notifications = f"{steady.url}/notifications/"
    sent = olga.post_form(
        notifications, f"{steady.url}/notifications/recipients/",
        {"recipient-email": "ops@alpha.example"},
    )  # fmt: skip
    assert sent.status_code == 302, sent.text[:800]
    assert olga.pinned()
    recipients = "SELECT count(*) FROM notifications_alertrecipient"
    assert (pair.primary.value(recipients), pair.replica.value(recipients)) == (1, 0)
    # ... and her next pages read the primary: she sees it, and the usage since.
    assert "ops@alpha.example" in olga.get(notifications).text
    assert olga.used_sms(steady.url) == "5,555"
    # Adam wrote nothing: his pages still read the replica.
    assert "ops@alpha.example" not in adam.get(notifications).text
    assert adam.used_sms(steady.url) == "1,234"
    # Once her pin has ended, the replica again.
    olga.unpin()
    assert olga.used_sms(steady.url) == "1,234"

    # A replica behind by more than 1 s is not read: the strict gunicorn reads the
    # primary, and counts it.
    wait_for(lambda: pair.replica.value(replica_lag()) > 1.2, 10, "a second of lag")
    assert adam.used_sms(strict.url) == "5,555"
    assert export_used(strict.url, key, period) == [5555]
    assert strict.fallbacks("lag") >= 2

    # Replay resumed: the replica catches up and serves the new figures.
    pair.replay_resume()
    pair.wait_caught_up()
    assert adam.used_sms(steady.url) == "5,555"
    assert "ops@alpha.example" in adam.get(notifications).text

    # The stream stalls while the replica's WAL receiver still runs (the primary's sender
    # hangs): the replica has replayed all it received, yet lacks what the primary
    # commits next. The strict gunicorn reads the primary; the steady one, which trusts
    # its health for an hour, shows the replica's older figure.
    sender = int(pair.primary.value("SELECT pid FROM pg_stat_replication"))
    os.kill(sender, signal.SIGSTOP)
    try:
        ingest(steady.url, key, "stalled-1", 10)
        assert pair.replica.value("SELECT count(*) FROM pg_stat_wal_receiver") == 1
        assert pair.replica.value("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"), (
            "the replica holds nothing unreplayed: it only lacks what was never sent"
        )
        lagging = strict.fallbacks("lag")
        # Once what it lacks is over a second old (the old measure, "replayed all it
        # received", read 0 until PostgreSQL's wal_receiver_timeout, 60 s).
        wait_for(lambda: adam.used_sms(strict.url) == "5,565", 10, "the stalled replica left")
        assert strict.fallbacks("lag") > lagging
        assert adam.used_sms(steady.url) == "5,555"
    finally:
        os.kill(sender, signal.SIGCONT)
    pair.wait_caught_up()
    assert adam.used_sms(steady.url) == "5,565"

    # The replica stops. The steady gunicorn still holds it healthy and its kept
    # connection: the first page fails on the replica and is answered from the primary,
    # the next ones go to the primary directly. No 500.
    ingest(steady.url, key, "after-2", 1)
    pair.replica.stop()
    assert adam.used_sms(steady.url) == "5,566"
    assert export_used(steady.url, key, period) == [5566]
    assert olga.used_sms(steady.url) == "5,566"
    assert steady.fallbacks("down") >= 2
    assert adam.used_sms(strict.url) == "5,566"
    assert strict.fallbacks("down") >= 1


def replica_lag() -> str:
    return "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
