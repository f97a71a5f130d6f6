"""Log lines: the request id they carry, and what they never carry.

Every line carries ``request_id``: the id of the HTTP request being served
(``creditguard.access``) or, in a Celery task, the id of the request that caused it,
carried in the task's headers (``creditguard.task_log``); a task started by beat carries
its own task id, and the tasks it sends carry that. So a usage batch's request id is on
its access line, on the evaluation task it asked for, and on the deliveries that
evaluation sent.

Nothing secret is written: both formatters (JSON for production, plain for the demo and
the tests; ``LOG_FORMAT``) pass the finished line through :func:`redact`, which masks API
keys (``cg_<prefix>_<secret>``: the public prefix stays), bearer tokens and
Authorization headers, webhook signing secrets (``whsec_…``) and values named password,
secret or token — whatever part of the record they came from (message, arguments,
extra fields, a traceback).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("creditguard_request_id", default=None)

REDACTED = "[redacted]"

# (a word that must be in the line, lower-cased, for the pattern to be tried; the pattern;
# its replacement). The cheap test first: most lines hold none of the words, and a line
# costs a lower-casing and eight substring tests instead of eight regular expressions.
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    # An API key (tenants.services.api_key_create): keep the public prefix.
    ("cg_", re.compile(r"\b(cg_[0-9A-Za-z]+_)[0-9A-Za-z-]+"), rf"\1{REDACTED}"),
    # A webhook signing secret (notifications.services.webhooks.SECRET_PREFIX).
    ("whsec_", re.compile(r"\bwhsec_[0-9A-Za-z+/=_-]+"), f"whsec_{REDACTED}"),
    # Credentials of an Authorization header, with or without its scheme.
    (
        "authorization",
        re.compile(
            r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?"
            r"[^\s\"',;}]+"
        ),
        rf"\1\2 {REDACTED}",
    ),
    ("bearer", re.compile(r"(?i)\b(bearer)\s+[0-9A-Za-z._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    ("basic", re.compile(r"(?i)\b(basic)\s+[0-9A-Za-z._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    # password=…, "secret": "…", token: … (a key's name followed by its value).
    *(
        (
            word,
            re.compile(rf"(?i)({word}[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}}&]+"),
            rf"\1{REDACTED}",
        )
        for word in ("password", "secret", "token")
    ),
]


def redact(text: str) -> str:
    lowered = text.lower()
    for word, pattern, replacement in _PATTERNS:
        if word in lowered:
            text = pattern.sub(replacement, text)
    return text.replace(f"  {REDACTED}", f" {REDACTED}")


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``-`` outside any request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLineFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(*, log_format: str, level: str) -> dict[str, object]:
    """The LOGGING setting: one line per record on stderr, JSON or plain."""
    formatter = "json" if log_format == "json" else "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "creditguard.logs.RequestIdFilter"}},
        "formatters": {
            "plain": {
                "()": "creditguard.logs.PlainFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            },
            "json": {
                "()": "creditguard.logs.JsonLineFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own console handler would print every request error a second time.
            "django": {"handlers": [], "propagate": True},
            # A 4xx is on its access line already; 5xx errors keep their traceback.
            "django.request": {"level": "ERROR"},
            # One access line per request is creditguard.access's; not runserver's too.
            "django.server": {"handlers": [], "propagate": False},
        },
    }
