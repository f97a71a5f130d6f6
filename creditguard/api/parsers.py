"""JSON parsing for the API: orjson, with the body size enforced while reading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from creditguard.api.exceptions import PayloadTooLarge


def read_limited(stream: IO[bytes] | None) -> bytes:
    """Read a request body, refusing (413) one larger than ``API_MAX_BODY_BYTES``."""
    if stream is None:
        return b""
    limit = settings.API_MAX_BODY_BYTES
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(limit)
    return body


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = read_limited(stream)
        if not body.strip():
            raise ParseError("The request body is empty; send a JSON document.")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from exc
