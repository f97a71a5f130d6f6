"""CreditGuard settings: the one place that reads the environment.

Every variable has a safe development default, except that production
(``CREDITGUARD_ENV=production``) refuses to start without a real ``SECRET_KEY``. How a
value is read (a switch is true or false, a bad value ends the process with one line) is
``creditguard/env.py``.
"""

from __future__ import annotations

import base64
import hashlib
import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from celery.schedules import crontab
from cryptography.fernet import Fernet

from creditguard.env import StrictEnv, refuse_to_start
from creditguard.settings_redis import (
    REDIS_BROKER_SENTINEL_OPTIONS,
    REDIS_BROKER_URL,
    REDIS_CACHE_SENTINEL_OPTIONS,
)
from creditguard.settings_redis import REDIS_SENTINEL_MASTER as REDIS_SENTINEL_MASTER
from creditguard.settings_redis import REDIS_SENTINELS as REDIS_SENTINELS
from creditguard.settings_redis import REDIS_URL as REDIS_URL

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-insecure-creditguard-secret-key-change-me"  # noqa: S105

env = StrictEnv()

ENVIRONMENT = env.str("CREDITGUARD_ENV", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    refuse_to_start(
        f"CREDITGUARD_ENV must be development, test or production, not {ENVIRONMENT!r}."
    )
PRODUCTION = ENVIRONMENT == "production"

SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    refuse_to_start("production needs SECRET_KEY set to a random value of 32+ characters.")
# Earlier keys still accepted for sessions and signed cookies while a new one takes over.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's and Redoc's files, served from the app (static): /api/docs/ needs no CDN.
    "drf_spectacular_sidecar",
    "axes",
    "creditguard",
    "tenants",
    "metering",
    "policies",
    "notifications",
    # The staff console, the face over the domain apps above.
    "console",
    # The customer portal, the tenants' own face over the same apps.
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers a locked-out login with the lockout page (django-axes).
    "axes.middleware.AxesMiddleware",
    "creditguard.api.problems.ApiProblemMiddleware",
    "creditguard.api.middleware.ChunkedBodyMiddleware",
]

ROOT_URLCONF = "creditguard.urls"
WSGI_APPLICATION = "creditguard.wsgi.application"
ASGI_APPLICATION = "creditguard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is a SQLite file under var/, so that a machine with only
# Python runs the whole app; production and CI set DATABASE_URL to PostgreSQL.
VAR_DIR = Path(env.str("CREDITGUARD_VAR_DIR", default=str(BASE_DIR / "var")))
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'creditguard.sqlite3'}")
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# What sits between the app and PostgreSQL. "pgbouncer-transaction": a PgBouncer in
# transaction pooling, where consecutive transactions of one connection may run on
# different server sessions, so nothing may rely on session state: no server-side
# cursors outside a transaction (Django's DISABLE_SERVER_SIDE_CURSORS), the
# authorization statement prepared on whichever session runs it (policies/sql.py), and
# a worker's session limits left to the pooler (creditguard/celery.py). docs/SCALING.md.
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in {"", "pgbouncer-transaction"}:
    refuse_to_start(
        f"DATABASE_POOLER must be empty or pgbouncer-transaction, not {DATABASE_POOLER!r}."
    )
TRANSACTION_POOLING = DATABASE_POOLER == "pgbouncer-transaction"
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = TRANSACTION_POOLING
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the dev server with threads; wait for the writer instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS_URL, or the master Redis Sentinel names (REDIS_SENTINELS, REDIS_SENTINEL_MASTER):
# creditguard/settings_redis.py.
# Connect and socket timeout of every Redis client (cache, rate limiter, health check,
# Celery broker): redis-py waits for ever by default, and a paused Redis accepts
# connections and never answers. The API goes on without Redis (docs/ARCHITECTURE.md).
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=0.5)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                **REDIS_CACHE_SENTINEL_OPTIONS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Staff and portal logins: django-axes refuses an account at a client address
# after AXES_FAILURE_LIMIT wrong passwords, for AXES_COOLOFF_MINUTES, with
# templates/admin/login_locked.html (429). Per account *and* address: a lock per account
# alone would let anyone lock staff out; per address alone, a shared office would lock
# itself. The address is creditguard.client_address's (FORWARDED_ALLOW_IPS), so clients
# behind a trusted proxy are told apart and no client can name itself.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The wait runs from the failure that locked; attempts while locked do not prolong it (the
# lock is per account and address already, and the right password must work at the end).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The lockout page: the console's (templates/admin/login_locked.html) or the portal's.
AXES_LOCKOUT_CALLABLE = "portal.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "creditguard.client_address.client_address"
# The customer portal's login (the staff console has its own at /admin/login/).
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:overview"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

if PRODUCTION:
    # gunicorn serves collected static files through WhiteNoise; in development
    # runserver serves them from the apps.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The portal's language choice (set_language) rides on HTTPS only as well.
    LANGUAGE_COOKIE_SECURE = True

# --- Transport security -----------------------------------------------------------

# Reverse proxies trusted to say the client's scheme (X-Forwarded-Proto) and address
# (X-Forwarded-For). It is gunicorn's own variable: gunicorn sets the request's scheme
# from X-Forwarded-Proto only when the peer is in this list, so Django sets no
# SECURE_PROXY_SSL_HEADER (which would believe any client that reaches gunicorn
# directly). creditguard.client_address reads X-Forwarded-For by the same list.
TRUSTED_PROXIES = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# Orchestrator probes and Prometheus's scrape speak plain http to the container.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 86400 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
# Preloading is the domain owner's decision (leaving the browsers' list takes months), so
# it is off unless asked for, and check --deploy is not asked to nag about it.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- API --------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.authentication.HasApiKeyScopes"],
    "DEFAULT_PARSER_CLASSES": ["creditguard.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["creditguard.api.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "creditguard.api.problems.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["tenants.authentication.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CreditGuard API",
    "DESCRIPTION": (
        "Credit metering and fair-use enforcement. Authenticate with "
        "`Authorization: Bearer <api key>`; errors are application/problem+json (RFC 9457)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"NotificationKindEnum": "notifications.models.Notification.Kind"},
    # /api/docs/ loads Swagger UI from this app's static files (drf-spectacular-sidecar,
    # collected with the rest and served by WhiteNoise in production), never from a CDN;
    # and asks no outside validator for a badge: it renders with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Errors every request can get (401, 405, 429, …) and their problem+json media type.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "creditguard.api.schema.document_problems",
    ],
}

# Requests per API key and second; past it, 429 with Retry-After. 0: no limit.
API_RATE_LIMIT_PER_SECOND = env.int("API_RATE_LIMIT_PER_SECOND", default=1000)
# Failed API authentications per client address, and per key prefix, in any minute;
# past it, 429 with Retry-After instead of 401. A valid key is never refused. 0: no limit.
API_AUTH_FAILURES_PER_MINUTE = env.int("API_AUTH_FAILURES_PER_MINUTE", default=20)
# Largest request body the API reads; larger bodies answer 413 before parsing.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Metering -------------------------------------------------------------------

# A period accepts late events for this long after its end, then it is closed.
PERIOD_GRACE_SECONDS = env.int("PERIOD_GRACE_SECONDS", default=3600)
# How far in the future an event's occurred_at may lie (client clock skew).
USAGE_MAX_FUTURE_SKEW_SECONDS = env.int("USAGE_MAX_FUTURE_SKEW_SECONDS", default=300)
USAGE_MAX_EVENTS_PER_BATCH = 1000
USAGE_MAX_QUANTITY = env.int("USAGE_MAX_QUANTITY", default=1_000_000)
USAGE_MAX_METADATA_BYTES = env.int("USAGE_MAX_METADATA_BYTES", default=4096)
# How long an allowed authorization holds its units unless committed or released.
AUTHORIZATION_TTL_SECONDS = env.int("AUTHORIZATION_TTL_SECONDS", default=600)
# Serve the common authorization in one SQL statement on PostgreSQL (see
# policies/services/authorization_fast.py); off, every authorization takes the full path.
AUTHORIZATION_FAST_PATH = env.bool("AUTHORIZATION_FAST_PATH", default=True)
# Overage charges of 'charge_overage' rules up to this amount are billed automatically.
OVERAGE_AUTO_BILL_BELOW = Decimal(env.str("OVERAGE_AUTO_BILL_BELOW", default="5.00"))
# How long a top-up offer stays open.
TOPUP_OFFER_TTL_SECONDS = env.int("TOPUP_OFFER_TTL_SECONDS", default=7 * 86400)
# How long purchased credits stay valid, across periods (each close carries what is left).
TOPUP_VALIDITY_DAYS = env.int("TOPUP_VALIDITY_DAYS", default=365)
if TOPUP_VALIDITY_DAYS < 1:
    refuse_to_start("TOPUP_VALIDITY_DAYS must be 1 or more.")
# An API key's last_used_at is written at most this often, to keep writes off the hot path.
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# How long an owner's invitation to join a tenant can be accepted (portal: Team).
INVITATION_VALIDITY_DAYS = env.int("INVITATION_VALIDITY_DAYS", default=7)
if INVITATION_VALIDITY_DAYS < 1:
    refuse_to_start("INVITATION_VALIDITY_DAYS must be 1 or more.")

# --- Notifications -------------------------------------------------------------

PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
SUPPORT_CONTACT = env.str("SUPPORT_CONTACT", default="support@creditguard.example")
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="CreditGuard <noreply@creditguard.example>"
)
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 10
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
# Webhook endpoints must resolve to public addresses (SSRF) unless this is on.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=not PRODUCTION)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_ENDPOINTS_PER_TENANT = 10
# Webhook signing secrets are stored encrypted (Fernet) with these comma-separated keys
# (`Fernet.generate_key()`): the first encrypts, all decrypt. To rotate, put a new key
# first, run `manage.py rotate_webhook_secrets_key`, then drop the old key. Required in
# production; elsewhere a key is derived from SECRET_KEY.
WEBHOOK_SECRET_KEYS = env.list("WEBHOOK_SECRET_KEYS", default=[])
if not WEBHOOK_SECRET_KEYS:
    if PRODUCTION:
        refuse_to_start("production needs WEBHOOK_SECRET_KEYS (Fernet keys, README).")
    WEBHOOK_SECRET_KEYS = [
        base64.urlsafe_b64encode(
            hashlib.sha256(f"creditguard webhook secrets {SECRET_KEY}".encode()).digest()
        ).decode()
    ]
for _key in WEBHOOK_SECRET_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        refuse_to_start("WEBHOOK_SECRET_KEYS holds a value that is not a Fernet key.")
# Retry schedule of a failing delivery (seconds after each failure, ±20 % jitter):
# about three days in all, as the Standard Webhooks guidance suggests.
DELIVERY_RETRY_DELAYS = [5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000, 36000, 36000]
# A claimed delivery not finished in this time is sent again (its worker died).
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=120)
# One webhook send (connecting, TLS, sending, reading the answer) ends by this deadline,
# whatever the per-step WEBHOOK_TIMEOUT_SECONDS: at most half the lease, so a send is over
# long before another worker may claim the same delivery; the other half covers resolving
# the name and recording the outcome.
WEBHOOK_SEND_DEADLINE_SECONDS = env.float(
    "WEBHOOK_SEND_DEADLINE_SECONDS", default=min(30.0, DELIVERY_LEASE_SECONDS / 2)
)
if not 0 < WEBHOOK_SEND_DEADLINE_SECONDS <= DELIVERY_LEASE_SECONDS / 2:
    refuse_to_start(
        "WEBHOOK_SEND_DEADLINE_SECONDS must be above 0 and at most half of "
        f"DELIVERY_LEASE_SECONDS ({DELIVERY_LEASE_SECONDS / 2:g} s)."
    )
# A send tries at most this many of the name's vetted addresses, in order.
WEBHOOK_CONNECT_ADDRESSES = env.int("WEBHOOK_CONNECT_ADDRESSES", default=3)
if WEBHOOK_CONNECT_ADDRESSES < 1:
    refuse_to_start("WEBHOOK_CONNECT_ADDRESSES must be at least 1.")
LOCALE_PATHS = [BASE_DIR / "locale"]
# A material policy change takes effect at least this long after it is published.
POLICY_NOTICE_DAYS = env.int("POLICY_NOTICE_DAYS", default=30)
# A fee schedule prices a tenant's units from this long after the tenant was told of it
# (a schedule's notice, or a new tenant's welcome); 0 = from the notice itself.
FEE_NOTICE_DAYS = env.int("FEE_NOTICE_DAYS", default=14)
if FEE_NOTICE_DAYS < 0:
    refuse_to_start("FEE_NOTICE_DAYS must be 0 or more.")
# Worse limit terms (less included, a lower or new ceiling, a harsher action, the end of
# carry-over) take effect at least this long after the tenant is told; 0: at once.
LIMIT_NOTICE_DAYS = env.int("LIMIT_NOTICE_DAYS", default=14)
if LIMIT_NOTICE_DAYS < 0:
    refuse_to_start("LIMIT_NOTICE_DAYS must be 0 or more.")
# A what-if changing more tenants than this is applied by a worker task in chunks of
# WHATIF_CHUNK_SIZE tenants (one transaction each), with a page showing its progress.
WHATIF_BACKGROUND_THRESHOLD = env.int("WHATIF_BACKGROUND_THRESHOLD", default=200)
WHATIF_CHUNK_SIZE = env.int("WHATIF_CHUNK_SIZE", default=100)
if WHATIF_BACKGROUND_THRESHOLD < 0 or WHATIF_CHUNK_SIZE < 1:
    refuse_to_start("WHATIF_BACKGROUND_THRESHOLD must be 0 or more, WHATIF_CHUNK_SIZE 1 or more.")
# The anomaly watch (policies.anomaly, docs/ANOMALY.md): every ANOMALY_WATCH_SECONDS it
# judges each tenant × channel's trailing hour against the same hour of the last
# ANOMALY_BASELINE_WEEKS weeks. A spike: at least ANOMALY_MIN_RATE units, and more than
# ANOMALY_SPIKE_FACTOR × the normal (never below ANOMALY_BASELINE_FLOOR units per hour) and
# ANOMALY_SPREAD_FACTOR × its spread above it, or at least ANOMALY_CAPACITY_SHARE of the
# channel's capacity per hour. Tenants whose rule restricts or suspends past the limit are
# throttled at once (ANOMALY_AUTO_THROTTLE) for ANOMALY_THROTTLE_HOURS; a confirmed alert
# quiet for ANOMALY_QUIET_HOURS, its throttle over, is closed.
ANOMALY_WATCH_SECONDS = env.float("ANOMALY_WATCH_SECONDS", default=300.0)
ANOMALY_BASELINE_WEEKS = env.int("ANOMALY_BASELINE_WEEKS", default=4)
ANOMALY_SPIKE_FACTOR = env.float("ANOMALY_SPIKE_FACTOR", default=3.0)
ANOMALY_SPREAD_FACTOR = env.float("ANOMALY_SPREAD_FACTOR", default=6.0)
ANOMALY_BASELINE_FLOOR = env.int("ANOMALY_BASELINE_FLOOR", default=20)
ANOMALY_MIN_RATE = env.int("ANOMALY_MIN_RATE", default=100)
ANOMALY_CAPACITY_SHARE = env.float("ANOMALY_CAPACITY_SHARE", default=0.25)
ANOMALY_AUTO_THROTTLE = env.bool("ANOMALY_AUTO_THROTTLE", default=True)
ANOMALY_THROTTLE_HOURS = env.float("ANOMALY_THROTTLE_HOURS", default=2.0)
ANOMALY_QUIET_HOURS = env.float("ANOMALY_QUIET_HOURS", default=3.0)
ANOMALY_EVIDENCE_HOURS = 48
if ANOMALY_BASELINE_WEEKS < 1 or ANOMALY_SPIKE_FACTOR <= 1 or ANOMALY_THROTTLE_HOURS <= 0:
    refuse_to_start(
        "ANOMALY_BASELINE_WEEKS must be at least 1, ANOMALY_SPIKE_FACTOR above 1 and "
        "ANOMALY_THROTTLE_HOURS above 0."
    )

# --- Celery ---------------------------------------------------------------------

# With Redis, Celery uses it. Without (the embedded default of the run command), kombu's
# filesystem transport under var/celery: a real worker and beat, no server to install.
# Production always sets REDIS_URL.
if PRODUCTION and not REDIS_URL:
    refuse_to_start("production needs REDIS_URL (Redis for Celery and the cache).")
CELERY_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_BROKER_URL  # REDIS_URL, or sentinel:// URLs of the sentinels
    # Longer than any countdown or ETA we use, so a waiting task is not redelivered early.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "visibility_timeout": 3600,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        **REDIS_BROKER_SENTINEL_OPTIONS,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DIR / "queue"),
        "data_folder_out": str(CELERY_DIR / "queue"),
        "processed_folder": str(CELERY_DIR / "processed"),
        # Without it kombu puts its control (pidbox) folder in the working directory.
        "control_folder": str(CELERY_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180
# PostgreSQL session limits of worker processes (creditguard/celery.py sets them on each
# worker connection, never on the web's): a task gives up waiting for a lock after
# WORKER_DB_LOCK_TIMEOUT_SECONDS (the beat's sweeps redo its work), no statement outlives
# the task's soft time limit, a transaction left idle ends, and PostgreSQL checks every
# WORKER_DB_CLIENT_CHECK_SECONDS that the worker is still there, so the session of a
# killed worker ends and releases its locks instead of waiting on for its own lock.
WORKER_DB_LOCK_TIMEOUT_SECONDS = env.float("WORKER_DB_LOCK_TIMEOUT_SECONDS", default=5.0)
WORKER_DB_STATEMENT_TIMEOUT_SECONDS = env.float(
    "WORKER_DB_STATEMENT_TIMEOUT_SECONDS", default=float(CELERY_TASK_SOFT_TIME_LIMIT)
)
WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = 60.0
WORKER_DB_CLIENT_CHECK_SECONDS = 2.0
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_DIR / "beat-schedule")
# Beat has a worker record a heartbeat this often; /readyz answers 503 when the newest is
# older than READYZ_HEARTBEAT_MAX_AGE_SECONDS (no worker, no beat, or no broker).
WORKER_HEARTBEAT_SECONDS = 30.0
READYZ_HEARTBEAT_MAX_AGE_SECONDS = env.float("READYZ_HEARTBEAT_MAX_AGE_SECONDS", default=120.0)
CELERY_BEAT_SCHEDULE = {
    "evaluate-pending": {"task": "policies.evaluate_pending", "schedule": 15.0},
    "evaluate-sweep": {"task": "policies.evaluate_sweep", "schedule": 300.0},
    "expire-authorizations": {"task": "policies.expire_authorizations", "schedule": 30.0},
    "expire-restrictions": {"task": "policies.expire_restrictions", "schedule": 60.0},
    "expire-grants": {"task": "metering.expire_grants", "schedule": 300.0},
    "close-periods": {"task": "metering.close_periods", "schedule": 300.0},
    "retry-deliveries": {"task": "notifications.retry_deliveries", "schedule": 30.0},
    # Expires with its interval: heartbeats queued while no worker runs are not heartbeats.
    "worker-heartbeat": {
        "task": "creditguard.worker_heartbeat",
        "schedule": WORKER_HEARTBEAT_SECONDS,
        "options": {"expires": WORKER_HEARTBEAT_SECONDS},
    },
    "anomaly-watch": {
        "task": "policies.anomaly_watch",
        "schedule": ANOMALY_WATCH_SECONDS,
        "options": {"expires": ANOMALY_WATCH_SECONDS},
    },
    "nightly-recommendations": {
        "task": "policies.compute_recommendations",
        "schedule": crontab(hour=3, minute=15),
    },
    # Monthly partitions of usage events and the ledger, last month to 3 ahead; retention.
    "partitions-maintain": {
        "task": "metering.partitions_maintain",
        "schedule": crontab(hour=2, minute=40),
    },
    "prune-event-keys": {"task": "metering.prune_event_keys", "schedule": 3600.0},
}
# Idempotency keys of usage events are kept while their period is open and this long after
# it closed; events of closed periods are refused, so dedupe is exact for all accepted ones.
USAGE_DEDUPE_RETENTION_HOURS = env.int("USAGE_DEDUPE_RETENTION_HOURS", default=24)
# Whole months of usage-event and ledger partitions kept before retention archives them
# (schema "archive"; only months whose periods are all closed). Unset: keep everything.
USAGE_RETENTION_MONTHS: int | None = env.int("USAGE_RETENTION_MONTHS", default=None)
# Partition maintenance (daily task, manage.py partitions) gives up on a table lock not
# granted within this many seconds (it takes ACCESS EXCLUSIVE on the events and ledger
# tables: waiting behind a long reader would stop ingestion behind it); the next run retries.
PARTITION_LOCK_TIMEOUT_SECONDS = env.float("PARTITION_LOCK_TIMEOUT_SECONDS", default=2.0)
# Requests within this window share one evaluation task.
EVALUATION_COALESCE_SECONDS = env.float("EVALUATION_COALESCE_SECONDS", default=1.0)
# At most one evaluation waits in the queue; a task lost before it started (a broker
# failure) holds that place this long at most (metering.services.evaluation_request).
EVALUATION_SCHEDULED_TTL_SECONDS = env.float("EVALUATION_SCHEDULED_TTL_SECONDS", default=60.0)

# --- Operations: metrics and logs -------------------------------------------------

from creditguard.settings_ops import LOG_FORMAT as LOG_FORMAT  # noqa: E402
from creditguard.settings_ops import LOGGING as LOGGING  # noqa: E402
from creditguard.settings_ops import METRICS_ALLOWED_NETWORKS as METRICS_ALLOWED_NETWORKS  # noqa: E402
from creditguard.settings_ops import METRICS_TOKEN as METRICS_TOKEN  # noqa: E402

# Outermost: the request id and the access line cover the whole request.
MIDDLEWARE.insert(0, "creditguard.access.AccessMiddleware")

# --- Read replica -------------------------------------------------------------------

# DATABASE_REPLICA_URL (optional) adds the alias "replica", a streaming replica of the
# primary; creditguard/db_router.py sends it the reads of chosen GET pages (the portal's
# figures, the billing export, the console's lists) while it answers and lags at most
# DATABASE_REPLICA_MAX_LAG_SECONDS (measured every DATABASE_REPLICA_CHECK_SECONDS per
# process); a person who wrote reads the primary for DATABASE_REPLICA_PIN_SECONDS. Unset,
# everything reads the primary. docs/OPERATIONS.md ("Read replica").
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=5.0)
DATABASE_REPLICA_PIN_SECONDS = env.float("DATABASE_REPLICA_PIN_SECONDS", default=15.0)
DATABASE_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=1.0)
if DATABASE_REPLICA_URL:
    with warnings.catch_warnings():  # an unknown scheme is refused below, in one line
        warnings.simplefilter("ignore")
        _replica = env.db_url("DATABASE_REPLICA_URL")
    if _replica.get("ENGINE") != DATABASES["default"]["ENGINE"] or not _replica.get("NAME"):
        refuse_to_start(
            "DATABASE_REPLICA_URL must be a database URL of the same engine as DATABASE_URL "
            "(postgres://user@host:port/name)."
        )
    DATABASES["replica"] = {
        **_replica,
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": DATABASES["default"].get(
            "DISABLE_SERVER_SIDE_CURSORS", False
        ),
        # The test runner makes no database for it: it reads the primary's.
        "TEST": {"MIRROR": "default"},
    }
    # A replica that is gone is skipped after this long, not waited for.
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
elif ENVIRONMENT == "test":
    # The router's tests (tests/test_db_router.py) read the test database through a
    # second connection; with DATABASE_REPLICA_READS off nothing else uses it.
    DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DATABASE_REPLICA_READS = env.bool("DATABASE_REPLICA_READS", default=bool(DATABASE_REPLICA_URL))
DATABASE_ROUTERS = ["creditguard.db_router.ReplicaRouter"]
# Innermost: a page the replica failed is answered again by running only its view.
MIDDLEWARE.append("creditguard.db_router.ReplicaReadsMiddleware")
