"""A PostgreSQL primary and its streaming replica of a test's own, for
tests/ops/test_replica.py and bench/replica.py: ``initdb -A trust`` in a temp dir on a
free port, migrated by the app's ``manage.py migrate``, then ``pg_basebackup -R`` a hot
standby on another free port. The system's cluster (DATABASE_URL) is never touched.

PostgreSQL's servers refuse to run as root: as root, every server command runs as the
``postgres`` user (``runuser``) in a directory it owns."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from tests.ops.stack import ROOT

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "creditguard"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",  # a test's data: nothing to keep after a crash
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "40",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    # The replica sends its oldest snapshot to the primary, so that the primary's vacuum
    # does not cancel a long read on the replica (a conflict with recovery).
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> bool:
    return all((PG_BIN / name).exists() for name in ("initdb", "pg_ctl", "pg_basebackup"))


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], timeout: float = 60) -> None:
    result = subprocess.run(
        _as_postgres(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class Cluster:
    name: str
    data: Path
    port: int
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data.parent / f"{self.name}.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def configure(self, **extra: str) -> None:
        lines = [f"{key} = {value}" for key, value in {**SETTINGS, **extra}.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.data.parent}'"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
              "-t", "30", "start"])  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop"])  # fmt: skip

    def connect(self, database: str = DATABASE) -> Any:
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, connect_timeout=5
        )
        connection.autocommit = True
        return connection

    def query(
        self, sql: str, params: Any = None, database: str = DATABASE
    ) -> list[tuple[Any, ...]]:
        with closing(self.connect(database)) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def value(self, sql: str, params: Any = None) -> Any:
        return self.query(sql, params)[0][0]


@dataclass
class Pair:
    root: Path
    primary: Cluster
    replica: Cluster
    seeded: str = ""  # what the seed script printed

    def caught_up(self) -> bool:
        """Whether the replica has replayed everything the primary has written."""
        written = self.primary.value("SELECT pg_current_wal_lsn()::text")
        return bool(self.replica.value("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [written]))

    def wait_caught_up(self, timeout: float = 20) -> float:
        """Seconds until the replica has replayed what the primary had written when asked."""
        written = self.primary.value("SELECT pg_current_wal_lsn()::text")
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.replica.value("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [written]):
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"the replica did not catch up in {timeout} s")

    def replay_pause(self) -> None:
        self.replica.value("SELECT pg_wal_replay_pause()::text")
        deadline = time.monotonic() + 10
        while self.replica.value("SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise AssertionError("replay did not pause")
            time.sleep(0.02)

    def replay_resume(self) -> None:
        self.replica.value("SELECT pg_wal_replay_resume()::text")


def app_environment(**extra: str) -> dict[str, str]:
    """The environment of the app's processes (manage.py, gunicorn) on a pair; ``extra``
    adds DATABASE_URL and DATABASE_REPLICA_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="creditguard.settings",
        CREDITGUARD_ENV="test",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def json_line(output: str) -> Any:
    """The last line of ``output`` that is a JSON object (a script's answer)."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


MIGRATE = "from django.core.management import call_command\ncall_command('migrate', verbosity=0)\n"


@contextmanager
def replica_pair(seed: str = "") -> Iterator[Pair]:
    """A migrated primary and its streaming replica, caught up; both stopped and their
    directory removed at the end, whatever happened. ``seed``: Python run by
    ``manage.py shell`` on the primary after the migrations, in the same process (one
    start of Django the fewer); what it prints is ``Pair.seeded``."""
    root = Path(tempfile.mkdtemp(prefix="cg-replica-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    primary = Cluster("primary", root / "primary", free_port())
    replica = Cluster("replica", root / "replica", free_port())
    try:
        _run([str(PG_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8",
              "--locale", "C.UTF-8", "-D", str(primary.data)])  # fmt: skip
        primary.configure()
        primary.start()
        primary.query(f'CREATE DATABASE "{DATABASE}"', database="postgres")
        env = app_environment(DATABASE_URL=primary.url())
        seeded = manage(env, "shell", stdin=MIGRATE + seed)
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
              "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast"])  # fmt: skip
        # The base backup copied the primary's settings; the replica's port follows them.
        replica.configure()
        replica.start()
        pair = Pair(root=root, primary=primary, replica=replica, seeded=seeded)
        pair.wait_caught_up()
        yield pair
    finally:
        for cluster in (replica, primary):
            try:
                cluster.stop()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"stopping the {cluster.name}: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
