"""Shared plumbing for the benchmarks: a scratch PostgreSQL database, a gunicorn
server on it, and the BENCHMARKS.md writer."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
ADMIN_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


def bench_database_name() -> str:
    """BENCH_DATABASE_NAME: a scratch database of your own where several people share a
    server. Read when asked, not at import: a harness may set its default in ``main``."""
    return os.environ.get("BENCH_DATABASE_NAME", "creditguard_bench")


def bench_database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + bench_database_name()


def recreate_database() -> str:
    """Drop and create the scratch database, migrate it, return its URL."""
    name = bench_database_name()
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {name}")
    conn.close()
    url = bench_database_url()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=server_env(url),
        check=True,
    )
    return url


def drop_database() -> None:
    """Drop the scratch database (its connections ended first)."""
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {bench_database_name()} WITH (FORCE)")
    conn.close()


@contextmanager
def scratch_database() -> Iterator[str]:
    """A freshly migrated scratch database for the block, dropped when it ends, also on an
    error or Ctrl-C: its URL."""
    try:
        yield recreate_database()
    finally:
        from django.db import connections

        connections.close_all()  # Django's, if the block set it up on this database
        drop_database()


def server_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="creditguard.settings",
        CREDITGUARD_ENV="development",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    # As in production: Redis for the cache and the broker (ingestion asks for evaluations).
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    return env


def setup_django(database_url: str) -> None:
    os.environ.update(server_env(database_url))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    database_url: str, *, workers: int, threads: int = 1, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Serve the app under gunicorn on a free loopback port until the block ends; ``env``
    adds to (or overrides) the server's environment."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "creditguard.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
        ],
        cwd=ROOT,
        env={**server_env(database_url), **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def machine() -> str:
    cpus = os.cpu_count()
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, {pg}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``## name`` of docs/BENCHMARKS.md."""
    DOC.parent.mkdir(exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else (
            "# Benchmarks\n\nWritten by the harness in `bench/` (`python -m bench.<name>`); "
            "every figure is measured against a floor taken in the same run, on the machine "
            "named with it.\n"
        )
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {name}\n\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    DOC.write_text(text)
