"""JSON parsing for the API: orjson, with the body size enforced while reading.

What any JSON body must satisfy, whatever the endpoint, is checked here once: at most
``MAX_JSON_DEPTH`` levels of nesting, and no NUL character in any key or string
(PostgreSQL text and jsonb cannot hold one). Chunked request bodies are made readable
first by :class:`creditguard.api.middleware.ChunkedBodyMiddleware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

from creditguard.api.exceptions import PayloadTooLarge
from creditguard.errors import InvalidInput, input_error

MAX_JSON_DEPTH = 32
MAX_REPORTED_NULS = 20


def read_limited(stream: IO[bytes] | None) -> bytes:
    """Read a request body, refusing (413) one larger than ``API_MAX_BODY_BYTES``."""
    if stream is None:
        return b""
    limit = settings.API_MAX_BODY_BYTES
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(limit)
    return body


def _nests_too_deep(document: Any) -> bool:
    """Whether a container lies deeper than ``MAX_JSON_DEPTH``: the fast walk a large
    body takes (containers only, exact types as orjson makes them, no paths)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        for child in node.values() if type(node) is dict else node:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= MAX_JSON_DEPTH:
                    return True
                push((child, depth + 1))
    return False


def _too_deep(document: Any) -> list[str | int] | None:
    """The path of a value nested deeper than ``MAX_JSON_DEPTH``, if there is one."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_JSON_DEPTH:
            return path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append((value, [*path, key]))
    return None


def _nul_paths(document: Any) -> list[list[str | int]]:
    """Paths of keys and strings holding a NUL character (at most MAX_REPORTED_NULS)."""
    found: list[list[str | int]] = []
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack and len(found) < MAX_REPORTED_NULS:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                found.append(path)
        elif isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if isinstance(key, str) and "\x00" in key:
                    found.append([*path, key.replace("\x00", "\\u0000")])
                stack.append((value, [*path, key]))
    return found


def json_document_check(body: bytes, document: Any) -> None:
    """Refuse (400) a document nested too deeply or holding a NUL character.

    Both checks first ask the raw bytes, at C speed, whether a walk is needed: nesting
    deeper than the limit needs at least that many brackets, and a NUL in a JSON string
    is always written ``\\u0000``.
    """
    if (
        body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH
        and isinstance(document, dict | list)
        and _nests_too_deep(document)
    ):
        path = _too_deep(document)
        if path is not None:
            raise InvalidInput(
                f"The JSON document nests more than {MAX_JSON_DEPTH} levels deep.",
                errors=[input_error(path, f"nested deeper than {MAX_JSON_DEPTH}")],
            )
    if b"\\u0000" in body:
        paths = _nul_paths(document)
        if paths:
            detail = "must not contain the NUL character (\\u0000)"
            raise InvalidInput(
                "The request holds the NUL character (\\u0000), which cannot be stored.",
                errors=[input_error(path, detail) for path in paths],
            )


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
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from exc
        json_document_check(body, document)
        return document


def optional_body(request: Request) -> Any:
    """The JSON body of an endpoint whose body may be left out: ``{}`` without one (an
    empty body, whatever its content type), else the document as sent — ``null``, a
    list or a string included, for the input serializer to refuse."""
    if request.stream is None:
        return {}
    return request.data
