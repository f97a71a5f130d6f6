"""Errors that services raise for the caller to show. They know nothing of HTTP;
the API's problem handler maps each to its status and problem type."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model


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
                {"pointer": f"/{field}", "field": field, "detail": " ".join(messages)}
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
