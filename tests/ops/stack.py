"""Processes of a test: started from argv lists, logged, stopped by SIGTERM; and scratch
databases on the test's PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parents[2]


class Process:
    """A subprocess whose output (stdout and stderr together) collects in ``log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log: list[str] = []
        self.terminated = False
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.log))

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        """One SIGTERM, as `docker stop` sends (a second one may turn a Celery worker's warm
        shutdown into the signal's default: ended at once)."""
        if self.alive() and not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM unless sent already, then SIGKILL after ``timeout``."""
        self.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def output(self) -> str:
        return f"----- {self.name}\n" + "".join(self.log)


def server_url() -> str:
    """postgres://user@host:port of the server the tests run on (DATABASE_URL)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return f"{parts.scheme}://{parts.netloc}"


def connect(name: str = "postgres") -> psycopg2.extensions.connection:
    parts = urlsplit(server_url())
    connection = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=name,
    )
    connection.autocommit = True
    return connection


def database_create(purpose: str) -> str:
    """A new empty database on the test server, named after the test run's (DATABASE_URL)
    so that parallel runs never meet; its name."""
    base = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") or "creditguard"
    name = f"{base}_{purpose}_{uuid.uuid4().hex[:8]}"
    with closing(connect()) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    return name


def database_drop(name: str) -> None:
    with closing(connect()) as admin, admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
