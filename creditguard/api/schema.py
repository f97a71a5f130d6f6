"""Shared OpenAPI pieces."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

Problem = inline_serializer(
    "Problem",
    {
        "type": serializers.URLField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "errors": inline_serializer(
            "ProblemFieldError",
            {
                "pointer": serializers.CharField(),
                "field": serializers.CharField(allow_null=True),
                "detail": serializers.CharField(),
                "index": serializers.IntegerField(required=False),
            },
            many=True,
            required=False,
        ),
    },
)

PROBLEM_RESPONSES = {
    code: OpenApiResponse(response=Problem, description=description)
    for code, description in {
        400: "Invalid input (problem+json, with per-field errors)",
        401: "Missing, unknown or revoked API key",
        403: "The key lacks a scope",
        409: "Conflict",
        413: "Request body too large",
        415: "Not application/json",
        422: "Valid input that cannot be processed (closed period)",
    }.items()
}
