"""HTTP API of tenants: what the calling key is."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import ApiKey


class ApiKeyApi(APIView):
    """The calling key: a cheap way for a client to check its key and scopes."""

    required_scopes: list[str] = []
    tenant_required = False

    @extend_schema(
        operation_id="api_key_retrieve",
        responses={
            200: inline_serializer(
                "ApiKeyInfo",
                {
                    "name": serializers.CharField(),
                    "prefix": serializers.CharField(),
                    "tenant": serializers.CharField(
                        allow_null=True, help_text="slug; null for a platform key"
                    ),
                    "scopes": serializers.ListField(child=serializers.CharField()),
                },
            ),
        },
        description="The API key making the request: its name, tenant and scopes.",
    )
    def get(self, request: Request) -> Response:
        api_key = request.auth
        assert isinstance(api_key, ApiKey)
        return Response(
            {
                "name": api_key.name,
                "prefix": api_key.prefix,
                "tenant": api_key.tenant.slug if api_key.tenant else None,
                "scopes": api_key.scopes,
            }
        )
