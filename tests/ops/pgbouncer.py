"""A real PgBouncer (Debian's ``pgbouncer``) in transaction pooling in front of the test's
PostgreSQL server, for tests/ops/test_pgbouncer.py and bench/pgbouncer.py: its own temp
dir, a free port, ``auth_type = trust``, a small pool so that clients really share
server sessions; its admin console read with ``SHOW POOLS`` / ``SHOW STATS``."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import psycopg2.extras

from tests.ops.stack import Process

DEBIAN_PGBOUNCER = "/usr/sbin/pgbouncer"


def executable() -> str | None:
    """PgBouncer's program, or None when it is not installed (scripts/test.sh installs
    Debian's when it runs as root)."""
    return shutil.which("pgbouncer") or (
        DEBIAN_PGBOUNCER if os.access(DEBIAN_PGBOUNCER, os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgBouncer:
    port: int
    user: str
    process: Process

    def url(self, database: str) -> str:
        """postgres://… of ``database`` (an alias of the ini's, or any database of the
        server through the ``*`` fallback) through the pooler."""
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on the admin console, rows as dicts."""
        admin = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="pgbouncer"
        )
        admin.autocommit = True  # the console knows no transactions
        with closing(admin), admin.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(f"SHOW {what}")
            return [dict(row) for row in cur.fetchall()]


@contextmanager
def pgbouncer(
    server_url: str,
    *,
    pool_size: int = 2,
    databases: list[str] | None = None,
    max_client_conn: int = 200,
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling in front of ``server_url`` (postgres://user@host:
    port) until the block ends. Every database of the server is reachable by its name;
    ``databases`` adds lines of the ini's ``[databases]`` (each a pool of its own, such as
    ``manage.py pgbouncer_worker_database`` prints)."""
    program = executable()
    if program is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    parts = urlsplit(server_url)
    host, server_port = parts.hostname or "127.0.0.1", parts.port or 5432
    user = parts.username or "postgres"
    directory = Path(tempfile.mkdtemp(prefix="cg-pgbouncer-"))
    port = free_port()
    upstream = f"host={host} port={server_port}"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                *(databases or []),
                f"* = {upstream}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {directory / 'userlist.txt'}",
                f"admin_users = {user}",
                f"stats_users = {user}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "min_pool_size = 0",
                "reserve_pool_size = 0",
                f"max_client_conn = {max_client_conn}",
                "server_lifetime = 3600",
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )
    )
    directory.chmod(0o755)
    argv = [program, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        argv[1:1] = ["-u", "nobody"]
    process = Process("pgbouncer", argv, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if not process.alive() or time.monotonic() > deadline:
                    raise RuntimeError("pgbouncer did not start\n" + process.output()) from None
                time.sleep(0.1)
        yield PgBouncer(port=port, user=user, process=process)
    finally:
        process.stop(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
