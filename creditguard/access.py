"""One access line and the request metrics per HTTP request, under a request id.

The outermost middleware: it takes the client's ``X-Request-ID`` when it is sane (1 to
128 letters, digits and ``.-_:``), else makes one, sets it for every log line of the
request (``creditguard.logs.request_id_var``) and for the tasks the request sends
(``creditguard.task_log``), and echoes it in the response's ``X-Request-ID``. After the
response it writes the access line (method, route, status, duration, tenant, request id;
never the query string or a header) and counts the request in
``creditguard_http_requests_total`` and ``creditguard_http_request_duration_seconds`` by
the resolved route's name, never by its path, so ids in paths add no series.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from creditguard.logs import request_id_var
from creditguard.metrics import HTTP_DURATION, HTTP_REQUESTS

logger = logging.getLogger("creditguard.access")

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "<unmatched>"
# Any other method a client sends is counted as "other": no series of its choosing.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_for(given: str | None) -> str:
    if given and _SANE.fullmatch(given):
        return given
    return uuid.uuid4().hex


def route_of(request: HttpRequest) -> str:
    """The resolved route's name (``v1:usage-events``), else its pattern, else
    ``<unmatched>`` (a 404 of an unknown path, a static file)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return match.view_name or match.route or UNMATCHED


def tenant_of(request: HttpRequest) -> str | None:
    """The tenant's slug when known: an API key's (DRF sets ``auth`` on the request) or
    the portal's current tenant."""
    for holder in (getattr(request, "auth", None), request):
        slug = getattr(getattr(holder, "tenant", None), "slug", None)
        if isinstance(slug, str):
            return slug
    return None


class AccessMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get(HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            self._record(request, response.status_code, time.perf_counter() - started)
            return response
        finally:
            request_id_var.reset(token)

    @staticmethod
    def _record(request: HttpRequest, status: int, seconds: float) -> None:
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
        HTTP_DURATION.labels(route=route, method=method).observe(seconds)
        duration_ms = round(seconds * 1000, 1)
        tenant = tenant_of(request)
        logger.info(
            "%s %s %s %s ms%s",
            method,
            route,
            status,
            duration_ms,
            f" tenant={tenant}" if tenant else "",
            extra={
                "event": "request",
                "method": method,
                "route": route,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "tenant": tenant,
            },
        )
