"""Errors that services raise for the caller to show. They know nothing of HTTP;
the API's problem handler maps each to its status and problem type."""

from __future__ import annotations

from typing import Any


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
