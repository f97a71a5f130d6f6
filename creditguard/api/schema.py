"""Shared OpenAPI pieces: the problem responses, and the rules that make the generated
schema say what the server does.

A view's ``@extend_schema`` names only the errors of its own logic (``problems(409)``);
:func:`document_problems`, a drf-spectacular postprocessing hook, adds the ones that follow
from how a request is handled — 401 for every operation (a key is always needed), 403
where a scope or a tenant key is, 404 on a path with an identifier, 400/413/415 where a
body is read, 405/406/429/503 everywhere — and gives every error its real media type,
``application/problem+json``. Request serializers that refuse unknown fields
(:class:`~creditguard.api.serializers.StrictInputSerializer`) are documented with
``additionalProperties: false``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from creditguard.api.problems import PROBLEM_CONTENT_TYPE
from creditguard.api.serializers import StrictInputSerializer

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

PROBLEM_DESCRIPTIONS = {
    400: "Invalid input (problem+json, with per-field errors)",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key lacks a scope, or is a platform key on a tenant endpoint",
    404: "No such object for this tenant (another tenant's objects are not found either)",
    405: "The path does not support this method (the Allow header lists those it does)",
    406: "The Accept header excludes application/json",
    409: "Conflict with the object's state or an earlier request",
    413: "Request body larger than API_MAX_BODY_BYTES",
    415: "The body is not application/json",
    422: "Valid input that cannot be processed (a closed billing period)",
    429: (
        "More than API_RATE_LIMIT_PER_SECOND requests of this key in a second, or more "
        "than API_AUTH_FAILURES_PER_MINUTE failed authentications from this address or "
        "for this key prefix in a minute"
    ),
    503: "The database (or Redis, where the request needs it) is unavailable; try again",
}


def problems(*codes: int) -> dict[int, OpenApiResponse]:
    """The problem responses of an operation's own logic; the ones every request can get
    are added by :func:`document_problems`."""
    return {
        code: OpenApiResponse(response=Problem, description=PROBLEM_DESCRIPTIONS[code])
        for code in codes
    }


# Follow-up operations for the stateful phase of schema-driven testing (and for readers):
# what to call with the identifier a response carries.
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("authorizations_create", "200"): {
        "GetAuthorization": {
            "operationId": "authorizations_retrieve",
            "parameters": {"authorization_id": "$response.body#/id"},
        },
        "CommitAuthorization": {
            "operationId": "authorizations_commit",
            "parameters": {"authorization_id": "$response.body#/id"},
        },
        "ReleaseAuthorization": {
            "operationId": "authorizations_release",
            "parameters": {"authorization_id": "$response.body#/id"},
        },
    },
    ("webhook_endpoints_create", "201"): {
        "UpdateWebhookEndpoint": {
            "operationId": "webhook_endpoints_update",
            "parameters": {"endpoint_id": "$response.body#/id"},
        },
        "RotateWebhookEndpointSecret": {
            "operationId": "webhook_endpoints_rotate_secret",
            "parameters": {"endpoint_id": "$response.body#/id"},
        },
        "DeleteWebhookEndpoint": {
            "operationId": "webhook_endpoints_delete",
            "parameters": {"endpoint_id": "$response.body#/id"},
        },
    },
    ("topup_offers_list", "200"): {
        "AcceptTopUpOffer": {
            "operationId": "topup_offers_accept",
            "parameters": {"offer_id": "$response.body#/results/0/id"},
        },
    },
}

_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'Bearer realm="api"',
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds until the key may send again",
        }
    },
    "503": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds after which to try again",
        }
    },
}


def _view_classes(generator: Any) -> dict[tuple[str, str], Any]:
    return {
        (path, method.lower()): callback.cls
        for path, _regex, method, callback in generator.endpoints or []
    }


def _codes_for(path: str, operation: dict[str, Any], view: Any) -> set[int]:
    codes = {401, 405, 406, 429, 503}
    if view is None or view.required_scopes or getattr(view, "tenant_required", True):
        codes.add(403)
    if "{" in path:
        codes.add(404)
    if "requestBody" in operation:
        codes |= {400, 413, 415}
    return codes


def document_problems(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the error responses every operation can give,
    all as problem+json, with their headers; and the links between operations."""
    views = _view_classes(generator)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for code in _codes_for(path, operation, views.get((path, method))):
                responses.setdefault(str(code), {"description": PROBLEM_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}}
                if code in _HEADERS:
                    response["headers"] = _HEADERS[code]
                links = LINKS.get((operation.get("operationId", ""), code))
                if links:
                    response["links"] = links
            operation["responses"] = dict(sorted(responses.items()))
    return result


class StrictInputSerializerExtension(OpenApiSerializerExtension):
    """A serializer that refuses unknown fields says so: ``additionalProperties: false``."""

    target_class = "creditguard.api.serializers.StrictInputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


def strict_inline_serializer(name: str, fields: dict[str, Any], **kwargs: Any) -> Any:
    """``inline_serializer`` for a request body that refuses unknown fields."""
    return type(name, (StrictInputSerializer,), fields)(**kwargs)
