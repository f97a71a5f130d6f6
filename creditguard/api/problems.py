"""RFC 9457 problem details for every API error.

All API errors leave through :func:`exception_handler` (DRF) or the middleware
below (errors Django raises before DRF runs), as ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail`` and, for invalid input,
``errors``: a list of ``{"pointer", "field", "detail"}`` (plus ``index`` for
batch items).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis
from django import db
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from creditguard.api.exceptions import PayloadTooLarge
from creditguard.errors import ServiceError, input_error

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://creditguard.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


_TYPES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("malformed-request", "Malformed request"),
    exceptions.AuthenticationFailed: ("unauthenticated", "Authentication failed"),
    exceptions.NotAuthenticated: ("unauthenticated", "Authentication required"),
    exceptions.PermissionDenied: ("forbidden", "Permission denied"),
    exceptions.NotFound: ("not-found", "Not found"),
    exceptions.MethodNotAllowed: ("method-not-allowed", "Method not allowed"),
    exceptions.NotAcceptable: ("not-acceptable", "Not acceptable"),
    exceptions.UnsupportedMediaType: ("unsupported-media-type", "Unsupported media type"),
    exceptions.Throttled: ("rate-limited", "Too many requests"),
    exceptions.ValidationError: ("validation-error", "The request is not valid"),
    PayloadTooLarge: ("payload-too-large", "Request body too large"),
}


def problem(
    status_code: int,
    problem_type: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem_type,
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


def _flatten(data: Any, path: list[str | int]) -> list[dict[str, Any]]:
    """DRF's nested ValidationError detail as a flat list of ``input_error``s."""
    if isinstance(data, dict):
        out: list[dict[str, Any]] = []
        for key, value in data.items():
            # DRF names a ListField's bad items by their position, an int.
            sub: list[str | int] = (
                [] if key == "non_field_errors" else [key if isinstance(key, int) else str(key)]
            )
            out.extend(_flatten(value, path + sub))
        return out
    if isinstance(data, list) and data and not all(isinstance(x, str) for x in data):
        out = []
        for index, value in enumerate(data):
            if value:
                out.extend(_flatten(value, [*path, index]))
        return out
    messages = data if isinstance(data, list) else [data]
    return [input_error(path, str(message)) for message in messages]


# A database or Redis that cannot serve the request: 503 with Retry-After, not 500 — the
# request was fine and may succeed in a moment.
OUTAGE_ERRORS = (
    db.OperationalError,
    db.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)
OUTAGE_HEADERS = {"Retry-After": "5"}


# One warning a minute during an outage, with the count of the requests it stopped,
# not one line per request.
OUTAGE_WARNING_INTERVAL_SECONDS = 60.0
_outage_warned_at = -math.inf
_outage_unwarned = 0


def _outage_problem(request_path: str, exc: Exception) -> dict[str, Any]:
    global _outage_warned_at, _outage_unwarned
    _outage_unwarned += 1
    now = time.monotonic()
    if now - _outage_warned_at >= OUTAGE_WARNING_INTERVAL_SECONDS:
        logger.warning(
            "Service unavailable on %s: %s: %s (%d request(s) answered 503 since the last warning)",
            request_path,
            type(exc).__name__,
            exc,
            _outage_unwarned,
        )
        _outage_warned_at, _outage_unwarned = now, 0
    return problem(
        503,
        "service-unavailable",
        "Service unavailable",
        "A service the request needs is unavailable; try again shortly.",
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OUTAGE_ERRORS):
        body = _outage_problem(getattr(context.get("request"), "path", "?"), exc)
        return Response(body, status=503, headers=OUTAGE_HEADERS, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(settings.API_MAX_BODY_BYTES)
    if isinstance(exc, ServiceError):
        set_rollback()
        body = problem(
            exc.status, exc.problem_type, exc.title, exc.detail, errors=exc.errors, extra=exc.extra
        )
        return Response(body, status=exc.status, content_type=PROBLEM_CONTENT_TYPE)
    if not isinstance(exc, exceptions.APIException):
        return None

    headers: dict[str, str] = {}
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        headers["Retry-After"] = str(math.ceil(wait))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        exc.status_code = status.HTTP_401_UNAUTHORIZED

    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail, [])
        body = problem(
            exc.status_code,
            "validation-error",
            "The request is not valid",
            "; ".join(f"{e['field'] or 'body'}: {e['detail']}" for e in errors),
            errors=errors,
        )
    else:
        problem_type, title = next(
            (v for k, v in _TYPES.items() if isinstance(exc, k)), ("error", "Error")
        )
        body = problem(exc.status_code, problem_type, title, str(exc.detail))

    set_rollback()
    return Response(
        body, status=exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def problem_response(status_code: int, problem_type: str, title: str, detail: str) -> JsonResponse:
    return JsonResponse(
        problem(status_code, problem_type, title, detail),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


class ApiProblemMiddleware:
    """Errors raised outside DRF views under /api/ (unknown URL, crash) as problems."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code == 404
            and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return problem_response(404, "not-found", "Not found", "No such API resource.")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return problem_response(
                413,
                "payload-too-large",
                "Request body too large",
                f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
            )
        if isinstance(exception, OUTAGE_ERRORS):
            return JsonResponse(
                _outage_problem(request.path, exception),
                status=503,
                headers=OUTAGE_HEADERS,
                content_type=PROBLEM_CONTENT_TYPE,
            )
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return problem_response(
            500,
            "internal-error",
            "Internal error",
            "An unexpected error occurred; it has been logged.",
        )
