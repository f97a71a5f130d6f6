"""Errors that services raise for the caller to show. They know nothing of HTTP;
the API's problem handler maps each to its status and problem type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model


def input_error(
    path: Sequence[str | int], detail: str, *, index: int | None = None
) -> dict[str, Any]:
    """One problem of a request's input, as every problem document lists it — the one
    place its names are written, so that every endpoint writes them alike:

    - ``pointer``: the JSON Pointer (RFC 6901) of the value, ``/events/0/quantity`` (a
      query parameter as if the query were an object, ``/period``; ``/`` the body as a
      whole), with ``~`` and ``/`` in a key escaped as ``~0`` and ``~1``;
    - ``field``: the same place as a name, ``events[0].quantity`` (None for the body);
    - ``detail``, and ``index``, the item of a batch it is about.

    ``path`` holds object keys as strings and list positions as integers."""
    pointer = "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path)
    field = ""
    for part in path:
        field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else part
    error: dict[str, Any] = {"pointer": pointer, "field": field or None, "detail": detail}
    if index is not None:
        error["index"] = index
    return error


class ServiceError(Exception):
    status = 400
    problem_type = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra or {}


class InvalidInput(ServiceError):
    status = 400
    problem_type = "validation-error"
    title = "The request is not valid"


def full_clean_or_refuse(instance: Model, *, detail: str) -> None:
    """Run the model's own validation; its errors become one ``InvalidInput`` naming each
    field, so a service that saves a model from a form never lets a ValidationError out."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise InvalidInput(
            detail,
            errors=[
                input_error([] if field == "__all__" else [field], " ".join(messages))
                for field, messages in exc.message_dict.items()
            ],
        ) from None


class Unprocessable(ServiceError):
    status = 422
    problem_type = "unprocessable"
    title = "The request cannot be processed"


class Conflict(ServiceError):
    status = 409
    problem_type = "conflict"
    title = "Conflict"


class NotFound(ServiceError):
    status = 404
    problem_type = "not-found"
    title = "Not found"
