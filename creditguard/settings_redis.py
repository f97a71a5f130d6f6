"""The Redis settings past one server: a master found through Redis Sentinel, read from
the environment as ``creditguard/settings.py`` reads the rest, which imports them from
here.

``REDIS_SENTINELS`` (``host:port,host:port``) and ``REDIS_SENTINEL_MASTER`` (the name the
sentinels monitor the master by) go together; unset, Redis is ``REDIS_URL``'s one server
exactly as before. Set, every client asks the sentinels for the master's address when it
connects, and again after a failover: the limiter, ``/healthz`` and the metrics through
``creditguard.redis_guard.redis_client()``, the cache through that client's pool, Celery
through kombu's own ``sentinel://`` transport. ``REDIS_URL`` then only says the database
number and the master's password (``redis://:secret@mymaster/0``; its host is never
dialled); unset, it is ``redis://<REDIS_SENTINEL_MASTER>/0``. docs/SCALING.md ("Redis
Sentinel") has the failover measured.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from creditguard.env import StrictEnv, refuse_to_start

env = StrictEnv()

REDIS_URL = env.str("REDIS_URL", default="")
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINELS: list[tuple[str, int]] = []
for _entry in env.list("REDIS_SENTINELS", default=[]):
    _host, _, _port = _entry.strip().rpartition(":")
    _host = _host.strip("[]")  # [::1]:26379
    if not _host or not _port.isdigit() or not 0 < int(_port) < 65536:
        refuse_to_start(f"REDIS_SENTINELS must be host:port,host:port; {_entry!r} is not.")
    REDIS_SENTINELS.append((_host, int(_port)))
if bool(REDIS_SENTINELS) != bool(REDIS_SENTINEL_MASTER):
    refuse_to_start("REDIS_SENTINELS and REDIS_SENTINEL_MASTER are set together or not at all.")

# Celery's broker and the extra options of its transport and of the cache: REDIS_URL's own
# without sentinels.
REDIS_BROKER_URL = REDIS_URL
REDIS_BROKER_SENTINEL_OPTIONS: dict[str, object] = {}
REDIS_CACHE_SENTINEL_OPTIONS: dict[str, object] = {}
if REDIS_SENTINELS:
    REDIS_URL = REDIS_URL or f"redis://{quote(REDIS_SENTINEL_MASTER, safe='')}/0"
    _url = urlsplit(REDIS_URL)
    _db = _url.path.strip("/") or "0"
    if _url.scheme != "redis" or not _db.isdigit():
        # TLS through the sentinels (rediss://) needs ssl options on both kinds of
        # connection; not supported until someone runs it.
        refuse_to_start(
            "with REDIS_SENTINELS, REDIS_URL must be redis://[:password@]<master>/<db>, "
            f"not {_url.scheme}://…{_url.path}."
        )
    _credentials = ""
    if _url.password is not None:
        _user = quote(unquote(_url.username or ""), safe="")
        _credentials = f"{_user}:{quote(unquote(_url.password), safe='')}@"
    # kombu reads the database and the password from the first URL and every sentinel's
    # address from the ';'-separated rest.
    REDIS_BROKER_URL = ";".join(
        f"sentinel://{_credentials}{host if ':' not in host else f'[{host}]'}:{port}/{_db}"
        for host, port in REDIS_SENTINELS
    )
    REDIS_BROKER_SENTINEL_OPTIONS = {"master_name": REDIS_SENTINEL_MASTER}
    # Django's RedisCache builds its pool with pool_class.from_url(LOCATION): this one
    # hands it the pool of redis_guard's client, so the cache follows the same master.
    REDIS_CACHE_SENTINEL_OPTIONS = {"pool_class": "creditguard.redis_guard.SentinelMasterPool"}
