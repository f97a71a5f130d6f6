"""Helpers for tests that run real processes: the app's environment on the test database,
gunicorn, a Celery worker, and a Redis server of the test's own that it may stop and start
again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.db import connection

from creditguard.celery import app

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def database_url() -> str:
    """The test database (this xdist worker's) as a URL, for the processes a test starts."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def app_environment(**extra: str) -> dict[str, str]:
    """The environment of an app process a test starts (gunicorn, a worker): the test's
    own less pytest's variables, the test settings, the test database; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="creditguard.settings",
        CREDITGUARD_ENV="test",
        DATABASE_URL=database_url(),
    )
    env.update(extra)
    return env


def _answers(url: str) -> bool:
    # A worker's first request loads the app: waited for, rather than sent again.
    try:
        return requests.get(url, timeout=10).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, timeout: float = 60) -> Iterator[str]:
    """gunicorn serving the app with ``env`` (``app_environment``) on a free port: its base
    URL once ``/healthz`` answers 200. Its output goes to a file (a pipe nobody reads would
    stall it once full) and is printed when it stops, which pytest shows for a failed test."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "creditguard.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:

            def up() -> bool:
                assert process.poll() is None, "gunicorn exited"
                return _answers(f"{base}/healthz")

            wait_for(up, timeout, "gunicorn")
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.seek(0)
            print(output.read())


def worker_environment(*, redis_url: str, mail_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process on the test database and ``redis_url``."""
    env = app_environment()
    env.update(
        REDIS_URL=redis_url,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        EVALUATION_COALESCE_SECONDS="0.2",
        DELIVERY_LEASE_SECONDS="2",
    )
    env.update(extra)
    return env


class Worker:
    """A `celery worker` subprocess; its output is collected in ``log``. The solo pool
    starts fastest; ``pool="prefork"`` runs tasks in a child process as in production."""

    def __init__(self, env: dict[str, str], *, pool: str = "solo") -> None:
        self.log: list[str] = []
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "creditguard",
                "worker",
                "-P",
                pool,
                "-c",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
                "-n",
                self.hostname,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(
            lambda: any(" ready." in line for line in self.log) or self.process.poll() is not None,
            what="the worker to start",
        )
        assert self.process.poll() is None, "".join(self.log)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.log))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: stop() ends
    it (its data with it, as a crashed broker without AOF), start() brings it back on the
    same port; pause() hangs it (SIGSTOP: connections open, nothing answered) until
    resume()."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: self._answers(client), timeout=10, what="redis-server to start")
        return self

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def broker(settings: Any) -> Iterator[RedisServer]:
    """A Redis of the test's own, broker and cache of this process and of the worker."""
    server = RedisServer().start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
        }
    }
    settings.REDIS_URL = server.url
    default_broker = app.conf.broker_url
    publish_to(server.url)
    yield server
    publish_to(default_broker)
    server.stop()


def publish_to(url: str) -> None:
    """Point this process's Celery producers at ``url``. Configured from Django settings,
    the app keeps its keys under the CELERY_ namespace; its connection pool and the
    producer pool on top of it are built once and must be dropped."""
    celery_app: Any = app
    celery_app.conf.update(CELERY_BROKER_URL=url)
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
