"""Read replicas: which reads may go to ``DATABASE_REPLICA_URL``, and when they may not.

Nothing reads the replica unless a request is marked for it, explicitly: a GET or HEAD
whose route is in :data:`REPLICA_ROUTES` (the portal's figures, the billing export and
line items, the console's start page and changelists that edit nothing), marked by
:class:`ReplicaReadsMiddleware` in ``process_view``. Everything else — every write, the
API's ingestion and authorization, the console's and portal's forms, Celery tasks,
management commands — never meets the router's replica answer, since no request state
says "replica" there.

Within a marked request the router (:class:`ReplicaRouter`, ``DATABASE_ROUTERS``) still
sends a read to the primary when

- the model decides who may see what (sessions, users and permissions, django-axes, API
  keys, memberships): access is never judged on a copy that may lag behind a revocation;
- a transaction is open on the primary (``transaction.atomic``), or the request has
  written already (any ``db_for_write``, which ``select_for_update`` and
  ``get_or_create`` ask too): a read that follows a write sees it;
- the person wrote a moment ago: any unsafe request (POST, …) from a browser sets the
  cookie :data:`PIN_COOKIE` for ``DATABASE_REPLICA_PIN_SECONDS``, and while it holds,
  their pages read the primary (read-your-writes);
- the replica is down or lags more than ``DATABASE_REPLICA_MAX_LAG_SECONDS`` behind
  (:func:`replica_health`, measured at most every ``DATABASE_REPLICA_CHECK_SECONDS`` per
  process, counted as ``creditguard_db_replica_fallbacks_total``).

A marked request answered with a 5xx (the replica stopped since the last check, a query
cancelled by a conflict with recovery) is answered again from the primary, once: the
routes are GET pages that only read, so running one twice changes nothing.

Raw SQL that a marked route runs (the billing export's statement, the usage rollups'
read) takes its connection from :func:`read_connection`, the router's answer for its
model, rather than ``django.db.connection``, which is always the primary.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from creditguard.metrics import REPLICA_FALLBACKS

logger = logging.getLogger(__name__)

PRIMARY = DEFAULT_DB_ALIAS
REPLICA = "replica"

# GET/HEAD routes (URL names) whose reads may go to the replica, and every console
# changelist (``admin:<app>_<model>_changelist``) that edits nothing. No form that saves
# what it shows reads the replica: a value up to the allowed lag old, sent back unchanged,
# would undo a colleague's save (the tenant's page, a changelist with list_editable).
REPLICA_ROUTES = frozenset(
    {
        "portal:overview",
        "portal:usage",
        "portal:usage_export",
        "portal:credits",
        "portal:notifications",
        "portal:limit_requests",
        "v1:billing-export",
        "v1:billing-line-items",
        "admin:index",
    }
)
# Models that decide who may see or do what: always read from the primary.
PRIMARY_APPS = frozenset({"sessions", "auth", "axes", "contenttypes", "admin"})
PRIMARY_MODELS = frozenset({"tenants.apikey", "tenants.membership"})

PIN_COOKIE = "cg_primary_until"
SAFE_METHODS = frozenset({"GET", "HEAD"})

# The replica's side of a lag check: in recovery, the WAL position it has replayed (bytes)
# and the age of the last transaction it replayed (seconds, NULL before the first).
REPLICA_POSITION_SQL = """
SELECT pg_is_in_recovery(),
       pg_last_wal_replay_lsn() - '0/0'::pg_lsn,
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
"""
# The primary's side: the WAL position it has flushed (every commit it shows lies below).
PRIMARY_POSITION_SQL = "SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn"


class LagJudge:
    """The replica's lag in seconds, from the positions of both servers at each check.

    The primary's flushed position is read first, then the replica's replayed one. Caught
    up with it, the replica shows every commit the primary showed: lag 0. Behind, the
    replica lacks some commit, and the lag is at most

    - the age of the last transaction it replayed (what it lacks came later), and
    - the time since the latest earlier check whose primary position it has reached (it
      holds everything committed before that check).

    The smaller bound is the lag. Neither needs the replica to know it is behind: a stream
    stalled while the WAL receiver still runs (a hung sender, a half-open connection) is
    caught as soon as the primary commits anything the replica then lacks, where "the
    replica has replayed all it received" would call it current. A process keeps the
    positions of its last checks (at most ``KEEP``)."""

    KEEP = 64

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque(maxlen=self.KEEP)
        self._lock = threading.Lock()

    def lag(self, *, at: float, primary: int, replayed: int, replay_age: float | None) -> float:
        with self._lock:
            self._seen.append((at, primary))
            if replayed >= primary:
                return 0.0
            bounds = [replay_age] if replay_age is not None else []
            reached = max(
                (moment for moment, position in self._seen if position <= replayed), default=None
            )
            if reached is not None:
                bounds.append(at - reached)
                while self._seen[0][0] < reached:  # earlier checks bound no better
                    self._seen.popleft()
            return max(0.0, min(bounds, default=math.inf))

    @staticmethod
    def primary_position(primary: Any) -> tuple[float, int]:
        """When (``time.monotonic()``) and where the primary's flushed WAL position was,
        from a cursor on it: read it first."""
        at = time.monotonic()
        primary.execute(PRIMARY_POSITION_SQL)
        return at, int(primary.fetchone()[0])

    def measure(self, primary: tuple[float, int], replica: Any) -> float:
        """The lag now, from a cursor on the replica and the primary's position read
        before it (``primary_position``)."""
        replica.execute(REPLICA_POSITION_SQL)
        recovering, replayed, replay_age = replica.fetchone()
        if not recovering:  # a promoted replica, or the primary itself
            return 0.0
        at, position = primary
        return self.lag(
            at=at,
            primary=position,
            replayed=int(replayed),
            replay_age=None if replay_age is None else float(replay_age),
        )


_judge = LagJudge()


def route_reads_replica(view_name: str) -> bool:
    """Whether a GET of the route named ``view_name`` may read the replica."""
    return view_name in REPLICA_ROUTES or (
        view_name.startswith("admin:")
        and view_name.endswith("_changelist")
        and view_name not in _editable_changelists()
    )


@cache
def _editable_changelists() -> frozenset[str]:
    """The console's changelists with fields edited in the list (``list_editable``)."""
    from django.contrib import admin

    return frozenset(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model, model_admin in admin.site._registry.items()
        if model_admin.list_editable
    )


def replica_configured() -> bool:
    return bool(getattr(settings, "DATABASE_REPLICA_READS", False)) and REPLICA in (
        settings.DATABASES
    )


# ---------------------------------------------------------------- the request's state


@dataclass
class Reads:
    """What the router may do for the reads of the current request."""

    replica: bool = False  # marked: a replica route, not pinned, the replica healthy
    wrote: bool = False  # something asked for the primary to write
    used: bool = False  # a read went to the replica


_reads: ContextVar[Reads | None] = ContextVar("creditguard_db_reads", default=None)


def current_reads() -> Reads | None:
    return _reads.get()


@contextmanager
def replica_reads(enabled: bool = True) -> Iterator[Reads]:
    """Mark the reads of a block as replica-readable, as the middleware marks a route's
    (tests and scripts); the health check and the pin are the caller's."""
    state = Reads(replica=enabled)
    token = _reads.set(state)
    try:
        yield state
    finally:
        state.replica = False
        _reads.reset(token)


class ReplicaRouter:
    """``DATABASE_ROUTERS``' router: reads of a marked request to the replica, all else
    (and anything outside a request) to the primary, by answering None."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        state = _reads.get()
        if state is None or not state.replica:
            return None
        if state.wrote or connections[PRIMARY].in_atomic_block:
            return PRIMARY
        meta = model._meta
        if meta.app_label in PRIMARY_APPS or meta.label_lower in PRIMARY_MODELS:
            return PRIMARY
        state.used = True
        return REPLICA

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        state = _reads.get()
        if state is not None:
            state.wrote = True
        return PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        # The replica is a copy of the primary: the same rows under the same keys.
        if {obj1._state.db, obj2._state.db} <= {PRIMARY, REPLICA}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The replica replays the primary's migrations; nothing is migrated on it.
        return False if db == REPLICA else None


def read_connection(model: type[Model]) -> BaseDatabaseWrapper:
    """The connection a raw read of ``model``'s table takes: the router's answer."""
    return connections[router.db_for_read(model)]


# ---------------------------------------------------------------- the replica's health


@dataclass(frozen=True)
class Health:
    usable: bool
    lag_seconds: float | None  # None: not reachable
    checked_at: float  # time.monotonic()

    @property
    def reason(self) -> str:
        return "down" if self.lag_seconds is None else "lag"


_health: Health | None = None


def replica_lag() -> float | None:
    """The replica's lag in seconds (:class:`LagJudge`), or None when it does not answer
    (or the primary does not: nothing can be judged then, and the request's reads meet the
    primary's error where they would without a replica). A statement on each server, on
    the connections of this thread, which the request's reads then reuse."""
    try:
        with connections[PRIMARY].cursor() as cursor:
            position = LagJudge.primary_position(cursor)
    except DatabaseError as exc:
        logger.warning("read replica not judged, the primary failed: %s", _first_line(exc))
        return None
    wrapper = connections[REPLICA]
    try:
        with wrapper.cursor() as cursor:
            return _judge.measure(position, cursor)
    except DatabaseError as exc:
        logger.warning("read replica unusable: %s", _first_line(exc))
        with suppress(DatabaseError):
            wrapper.close()
        return None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["?"])[0]


def replica_health(*, fresh: bool = False) -> Health:
    """Whether the replica may serve reads now: it answers and lags at most
    ``DATABASE_REPLICA_MAX_LAG_SECONDS``. Measured at most every
    ``DATABASE_REPLICA_CHECK_SECONDS`` in a process (``fresh``: now); two threads may
    both measure, which costs a statement and changes nothing."""
    global _health
    now = time.monotonic()
    health = _health
    if (
        not fresh
        and health is not None
        and now - health.checked_at < float(settings.DATABASE_REPLICA_CHECK_SECONDS)
    ):
        return health
    lag = replica_lag()
    usable = lag is not None and lag <= float(settings.DATABASE_REPLICA_MAX_LAG_SECONDS)
    if health is not None and health.usable != usable:
        logger.warning("read replica %s (lag %s s)", "usable again" if usable else "not used", lag)
    _health = Health(usable=usable, lag_seconds=lag, checked_at=now)
    return _health


def replica_health_forget() -> None:
    """Drop the measured health (tests: the next request measures again)."""
    global _health
    _health = None


# ---------------------------------------------------------------- the middleware


def pinned(request: HttpRequest) -> bool:
    """Whether the person wrote within ``DATABASE_REPLICA_PIN_SECONDS``
    (:data:`PIN_COOKIE` holds the instant the pin ends)."""
    try:
        return float(request.COOKIES.get(PIN_COOKIE, "0")) > time.time()
    except ValueError:
        return False


class ReplicaReadsMiddleware:
    """Marks replica routes' reads for the router (see the module's docstring), pins a
    person who wrote to the primary, and answers a marked request again from the
    primary when the replica failed it. The innermost middleware, so that answering
    again reruns only the view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not replica_configured():
            return self.get_response(request)
        state = Reads()
        token = _reads.set(state)
        try:
            response = self.get_response(request)
            if state.used and response.status_code >= 500:
                response = self._again_on_primary(request, state)
        except BaseException:
            state.replica = False
            _reads.reset(token)
            raise
        if state.replica and isinstance(response, StreamingHttpResponse) and not response.is_async:
            # A streamed body (the CSV exports) is read after this returns: the mark
            # lasts until it has been sent (or the response is closed).
            content = cast(Iterator[bytes], response.streaming_content)
            response.streaming_content = _streamed(content, state)
        else:
            state.replica = False
            _reads.reset(token)
        if request.method not in SAFE_METHODS and (request.COOKIES or response.cookies):
            self._pin(response)
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., HttpResponse], args: Any, kwargs: Any
    ) -> None:
        state = _reads.get()
        if state is None or request.method not in SAFE_METHODS or request.resolver_match is None:
            return
        if state.wrote or not route_reads_replica(request.resolver_match.view_name):
            return
        if pinned(request):
            return
        health = replica_health()
        if not health.usable:
            REPLICA_FALLBACKS.labels(health.reason).inc()
            return
        state.replica = True

    def _again_on_primary(self, request: HttpRequest, state: Reads) -> HttpResponseBase:
        health = replica_health(fresh=True)
        REPLICA_FALLBACKS.labels("error" if health.usable else health.reason).inc()
        logger.warning("answering %s again from the primary", request.path)
        state.replica = False
        state.used = False
        state.wrote = True  # process_view, run again, leaves the request on the primary
        return self.get_response(request)

    @staticmethod
    def _pin(response: HttpResponseBase) -> None:
        seconds = float(settings.DATABASE_REPLICA_PIN_SECONDS)
        if seconds <= 0:
            return
        response.set_cookie(
            PIN_COOKIE,
            f"{time.time() + seconds:.3f}",
            max_age=int(seconds) + 1,
            httponly=True,
            samesite="Lax",
            secure=bool(getattr(settings, "SESSION_COOKIE_SECURE", False)),
        )


def _streamed(content: Iterable[bytes], state: Reads) -> Iterator[bytes]:
    try:
        yield from content
    finally:
        state.replica = False
