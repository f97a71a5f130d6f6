"""Request plumbing of the API that runs before DRF: chunked request bodies."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from creditguard.api.exceptions import PayloadTooLarge
from creditguard.api.parsers import read_limited
from creditguard.api.problems import problem_response


class ChunkedBodyMiddleware:
    """A request body sent with ``Transfer-Encoding: chunked`` has no Content-Length,
    and Django then reads it as empty: a commit of 1 unit would commit them all.

    Under /api/, such a body is read where the WSGI server marks its input as ending
    at the body's end (``wsgi.input_terminated``: gunicorn, which de-chunks it), up to
    ``API_MAX_BODY_BYTES`` (413 past it), and given a Content-Length; where it cannot
    be read (Django's development server) the request is refused with 411.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if (
            request.path.startswith("/api/")
            and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
            and not meta.get("CONTENT_LENGTH")
        ):
            refused = self._read_chunked(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def _read_chunked(request: HttpRequest) -> HttpResponse | None:
        environ = getattr(request, "environ", {})
        if not environ.get("wsgi.input_terminated"):
            return problem_response(
                411,
                "length-required",
                "Length required",
                "This server cannot read a chunked request body; send it with a "
                "Content-Length header.",
            )
        try:
            body = read_limited(environ["wsgi.input"])
        except PayloadTooLarge as exc:
            return problem_response(413, "payload-too-large", "Request body too large",
                                    str(exc.detail))  # fmt: skip
        # Django's request reads its private stream, limited to the Content-Length it
        # saw (none): give it the de-chunked body and its length.
        request._stream = io.BytesIO(body)
        request.META["CONTENT_LENGTH"] = str(len(body))
        return None
