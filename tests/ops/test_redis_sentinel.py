"""Redis behind Sentinel: every Redis client of the app follows the master the sentinels
name, through a failover.

The test's own group — a master, its replica and three sentinels (quorum 2) on free
ports in a temporary directory, never the shared 127.0.0.1:6379 — serves a real
gunicorn (limiter, cache, Celery producer) and a real Celery worker, both configured by
REDIS_SENTINELS and REDIS_SENTINEL_MASTER alone. The master is killed; the sentinels
promote the replica after down-after-milliseconds (1 s); meanwhile the API answers,
degraded, never 500; then the limiter and the broker work again on the promoted replica.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import requests
from django.core.cache import cache
from redis.sentinel import Sentinel

from creditguard.api.throttling import clear_local_windows, limit_hit
from creditguard.redis_guard import REDIS_FAILURES, redis_breaker_reset, redis_client
from metering.models import Balance
from notifications.models import Notification
from tests.test_redis_outage import customer
from tests.test_settings import manage
from tests.workers import (
    Worker,
    app_environment,
    free_port,
    gunicorn,
    wait_for,
    worker_environment,
)

MASTER_NAME = "cg-test-master"
DOWN_AFTER_MILLISECONDS = 1000


class SentinelGroup:
    """A master, its replica and three sentinels of the test's own, each a redis-server
    on a free port with its files in ``directory``, nothing persisted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> str:
        """The value of REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def _server(self, port: int, *argv: str) -> None:
        log = (self.directory / f"redis-{port}.log").open("wb")
        self.processes[port] = subprocess.Popen(
            ["redis-server", *argv], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )

    def start(self) -> SentinelGroup:
        data = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        # The replica's first sync at once, not after the 5 s diskless default.
        data += ["--dir", str(self.directory), "--repl-diskless-sync-delay", "0"]
        self._server(self.master_port, "--port", str(self.master_port), *data)
        self._server(
            self.replica_port,
            *("--port", str(self.replica_port), *data),
            *("--replicaof", "127.0.0.1", str(self.master_port)),
        )
        for port in self.sentinel_ports:
            # A sentinel rewrites its configuration file: one each, in the test's directory.
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MILLISECONDS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            self._server(port, str(conf), "--sentinel")
        wait_for(self._ready, timeout=20, what="the master, its replica and three sentinels")
        return self

    def _ready(self) -> bool:
        """The replica in sync, and every sentinel knowing it and the two others."""
        try:
            replica = redis.Redis(port=self.replica_port, socket_timeout=0.5)
            if replica.info("replication").get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                sentinel = redis.Redis(port=port, socket_timeout=0.5)
                if len(sentinel.sentinel_sentinels(MASTER_NAME)) != 2:
                    return False
                if len(sentinel.sentinel_slaves(MASTER_NAME)) != 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def master_named(self) -> int | None:
        """The port of the master the sentinels name now."""
        try:
            sentinel = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=0.5)
            return int(sentinel.discover_master(MASTER_NAME)[1])
        except redis.RedisError:
            return None

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path)
    try:
        yield group.start()
    finally:
        group.stop()


def sentinel_environment(group: SentinelGroup) -> dict[str, str]:
    """What configures an app process for the group: the sentinels and the master's name,
    no REDIS_URL (it defaults to redis://<master name>/0)."""
    return {"REDIS_SENTINELS": group.sentinels, "REDIS_SENTINEL_MASTER": MASTER_NAME}


# --- in this process: each client through the sentinels ---------------------------------


@pytest.fixture
def sentinel_settings(group: SentinelGroup, settings: Any) -> Iterator[SentinelGroup]:
    """This process's settings as creditguard/settings_redis.py makes them for the group."""
    url = f"redis://{MASTER_NAME}/0"
    settings.REDIS_URL = url
    settings.REDIS_SENTINELS = [("127.0.0.1", port) for port in group.sentinel_ports]
    settings.REDIS_SENTINEL_MASTER = MASTER_NAME
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"pool_class": "creditguard.redis_guard.SentinelMasterPool"},
        }
    }
    yield group
    redis_breaker_reset()
    clear_local_windows()


def test_the_limiter_and_the_cache_write_to_the_master_the_sentinels_name(sentinel_settings):
    group = sentinel_settings
    master = redis.Redis(port=group.master_port)
    assert redis_client().connection_pool.connection_kwargs["db"] == 0

    assert limit_hit(["creditguard:test:sentinel"], limit=5, window=60, feature="test") is None
    cache.set("sentinel-probe", "cached", timeout=60)

    assert master.zcard("creditguard:test:sentinel") == 1
    assert cache.get("sentinel-probe") == "cached"
    assert master.exists(":1:sentinel-probe")
    # Not the replica's own writes: the replica refuses them.
    with pytest.raises(redis.ReadOnlyError):
        redis.Redis(port=group.replica_port).set("x", 1)


def test_with_no_sentinel_answering_the_api_goes_on_degraded(world, client, settings):
    # Nobody listens on these ports: the client cannot even learn where the master is.
    settings.REDIS_URL = f"redis://{MASTER_NAME}/0"
    settings.REDIS_SENTINELS = [("127.0.0.1", free_port()), ("127.0.0.1", free_port())]
    settings.REDIS_SENTINEL_MASTER = MASTER_NAME
    failures_before = REDIS_FAILURES["rate_limit"]
    try:
        assert world.alice_api.get("/api/v1/balances").status_code == 200
        health = client.get("/healthz")
    finally:
        redis_breaker_reset()
        clear_local_windows()
    assert REDIS_FAILURES["rate_limit"] == failures_before + 1  # limited in the process
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["redis"] == "error: MasterNotFoundError"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_SENTINELS": "127.0.0.1"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "mymaster"}, "REDIS_SENTINELS"),
        (
            {
                "REDIS_SENTINELS": "127.0.0.1:26379",
                "REDIS_SENTINEL_MASTER": "mymaster",
                "REDIS_URL": "rediss://mymaster/0",
            },
            "REDIS_URL",
        ),
    ],
)
def test_a_bad_sentinel_configuration_refuses_to_start_in_one_line(env, named):
    result = manage("check", **env)
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CreditGuard will not start: ")
    assert named in lines[0]


def test_the_celery_broker_is_the_kombu_sentinel_transport_over_every_sentinel():
    code = (
        "from django.conf import settings as s;"
        "print(s.CELERY_BROKER_URL); print(s.CELERY_BROKER_TRANSPORT_OPTIONS['master_name']);"
        "print(s.REDIS_URL)"
    )
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        REDIS_SENTINELS="10.0.0.1:26379,10.0.0.2:26380",
        REDIS_SENTINEL_MASTER="mymaster",
        REDIS_URL="redis://:s%3Acret@mymaster/2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "sentinel://:s%3Acret@10.0.0.1:26379/2;sentinel://:s%3Acret@10.0.0.2:26380/2",
        "mymaster",
        "redis://:s%3Acret@mymaster/2",
    ]


# --- a real gunicorn and worker through a failover --------------------------------------


@pytest.fixture
def web(group: SentinelGroup) -> Iterator[str]:
    """gunicorn, two workers, configured for the group by the environment alone."""
    env = app_environment(
        DATABASE_CONN_MAX_AGE="0",
        EVALUATION_COALESCE_SECONDS="0.2",
        # The evaluation asked for just before the kill may be lost with the master while
        # its place in the queue (the coalescing mark) was replicated: in production beat's
        # evaluate_pending frees it within 15 s; this test runs no beat.
        EVALUATION_SCHEDULED_TTL_SECONDS="2",
        LOG_LEVEL="WARNING",
        **sentinel_environment(group),
    )
    env.pop("REDIS_URL", None)
    with gunicorn(env) as base:
        yield base


@pytest.fixture
def worker(group: SentinelGroup, tmp_path: Path) -> Iterator[Worker]:
    env = worker_environment(redis_url=f"redis://{MASTER_NAME}/0", mail_dir=tmp_path / "mail")
    del env["REDIS_URL"]
    env.update(sentinel_environment(group))
    started = Worker(env)
    try:
        yield started
    finally:
        started.stop()
        print("".join(started.log))


class Health:
    """/healthz every 0.1 s in a thread: the statuses and the app's own verdicts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.get(self.url, timeout=5)
                seen = (time.monotonic(), response.status_code, response.json()["status"])
            except (requests.RequestException, ValueError) as exc:
                seen = (time.monotonic(), 0, exc.__class__.__name__)
            self.seen.append(seen)
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def warned(tenant: Any) -> bool:
    return Notification.objects.filter(tenant=tenant, kind="threshold_warning").exists()


def failed_authentications(server: redis.Redis, prefix: str) -> int:
    return cast("int", server.zcard(f"creditguard:auth-failures:key:{prefix}"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_limiter_and_the_broker_follow_the_master_through_a_failover(
    group: SentinelGroup, web: str, worker: Worker
):
    before_tenant, before = customer(web, "before-failover")
    during_tenant, during = customer(web, "during-failover")
    after_tenant, after = customer(web, "after-failover")
    master = redis.Redis(port=group.master_port)
    promoted = redis.Redis(port=group.replica_port)

    # Through the sentinel-named master: an ingest past 80 % is evaluated by the worker
    # (the web's evaluation request: the cache's coalescing key, a task published by
    # kombu's sentinel transport) and warned; a wrong key's failures are counted in Redis.
    before.round(quantity=850)
    wait_for(lambda: warned(before_tenant), what="the warning through the first master")
    wrong = requests.get(web + "/api/v1/balances", headers={"Authorization": "Bearer cg_0123456789ab_x"}, timeout=5)  # fmt: skip
    assert wrong.status_code == 401
    assert failed_authentications(master, "0123456789ab") == 1
    for client in (during, after):
        client.round(quantity=1)  # each gunicorn worker has its connections
        client.statuses.clear()

    health = Health(web + "/healthz")
    try:
        group.kill(group.master_port)
        killed = time.monotonic()
        # Meanwhile: the API answers. Past 80 % (not 100 %) too; its evaluation request is
        # not sent while Redis fails, and the balance stays marked.
        during.round(quantity=850)
        while group.master_named() != group.replica_port:
            assert time.monotonic() - killed < 15, "no failover"
            during.round(quantity=1)
        failover_seconds = time.monotonic() - killed
        during.run_for(1, quantity=1)
        # The app's own verdict: Redis ok again once the clients reach the promoted replica.
        wait_for(
            lambda: bool(health.seen) and health.seen[-1][1:] == (200, "ok"),
            timeout=15,
            what="/healthz ok on the promoted replica",
        )
        recovered_seconds = time.monotonic() - killed
    finally:
        health.stop()
    print(
        f"failover: the sentinels named the replica {failover_seconds:.2f} s after the "
        f"master was killed; /healthz ok again after {recovered_seconds:.2f} s; "
        f"{len(during.statuses)} API calls meanwhile, slowest {max(during.latencies):.3f} s"
    )
    assert {status for _, status in during.statuses} <= {200, 201}, during.statuses
    assert {status for _, status, _ in health.seen} == {200}
    assert "degraded" in {verdict for _, _, verdict in health.seen}
    assert not warned(during_tenant)
    balance = Balance.objects.get(tenant=during_tenant, channel__code="sms")
    assert balance.version > balance.evaluated_version

    # After: once each gunicorn worker's breaker (5 s) has closed, the limiter counts on
    # the promoted replica ...
    wait_for(
        lambda: (
            requests.get(
                web + "/api/v1/balances",
                headers={"Authorization": "Bearer cg_ba9876543210_x"},
                timeout=5,
            ).status_code
            == 401  # fmt: skip
            and failed_authentications(promoted, "ba9876543210") >= 1
        ),
        timeout=15,
        what="a failed authentication counted on the promoted replica",
    )
    # ... and the broker: an evaluation request from the web reaches the worker, which
    # evaluates every balance that moved, the outage's too.
    after.round(quantity=850)
    wait_for(lambda: warned(after_tenant), what="the warning through the promoted replica")
    wait_for(lambda: warned(during_tenant), what="the outage's warning, evaluated late")
    assert promoted.info("replication")["role"] == "master"
