"""The workers' own database for a PgBouncer in transaction pooling: a ``[databases]``
line whose ``connect_query`` sets the worker limits (``WORKER_DB_*``) and the workers'
application name on every server session the pooler opens for them — the session
settings a worker cannot set itself behind the pooler (DATABASE_POOLER; docs/SCALING.md).

    manage.py pgbouncer_worker_database --host db --dbname creditguard >> pgbouncer.ini
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from creditguard.celery import worker_connect_query


def ini_quoted(value: str) -> str:
    """A value in PgBouncer's ``[databases]`` syntax: in single quotes, doubled inside."""
    return "'" + value.replace("'", "''") + "'"


class Command(BaseCommand):
    help = "Print the [databases] line of the workers' own PgBouncer database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="creditguard_worker", help="the pooler's name")
        parser.add_argument("--host", required=True, help="PostgreSQL's host, from the pooler")
        parser.add_argument("--port", type=int, default=5432)
        parser.add_argument("--dbname", required=True, help="the database on PostgreSQL")
        parser.add_argument(
            "--pg-version",
            type=int,
            help="PostgreSQL's server_version_num (default: asked of DATABASE_URL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pg_version = options["pg_version"]
        if pg_version is None:
            connection.ensure_connection()
            pg_version = int(connection.connection.server_version)
        query = worker_connect_query(pg_version)
        self.stdout.write(
            f"{options['name']} = host={options['host']} port={options['port']}"
            f" dbname={options['dbname']} connect_query={ini_quoted(query)}"
        )
