"""HTTP API of notifications: the in-app list and webhook endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from creditguard.api.pagination import CursorListApi
from creditguard.api.schema import problems
from creditguard.api.serializers import StrictInputSerializer
from notifications.messages import render_message
from notifications.models import Notification, PlatformEvent
from notifications.selectors import notifications_listed
from notifications.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
    webhook_endpoints_owned,
)
from tenants.authentication import request_tenant
from tenants.models import ApiKey, Scope, Tenant


class MessageSerializer(serializers.Serializer):
    language = serializers.ChoiceField(choices=Tenant.Language.choices)
    subject = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField())


class NotificationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.ChoiceField(choices=Notification.Kind.choices)
    created_at = serializers.DateTimeField()
    payload = serializers.JSONField(help_text="The figures of the notification")
    message = serializers.SerializerMethodField()

    @extend_schema_field(MessageSerializer)
    def get_message(self, obj: Notification) -> dict[str, Any]:
        return render_message(obj, language=obj.tenant.language).as_data()


class NotificationsApi(CursorListApi):
    required_scopes = [Scope.USAGE_READ]

    @extend_schema(
        operation_id="notifications_list",
        responses={200: NotificationOutputSerializer(many=True), **problems(400)},
        description="The tenant's notifications (in-app), newest first, cursor-paginated.",
    )
    def get(self, request: Request) -> Response:
        notifications = notifications_listed(tenant=request_tenant(request))
        return self.page_of(request, notifications, NotificationOutputSerializer)


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    url = serializers.URLField()
    kinds = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


# An absolute http(s) URI (RFC 3986 characters only) with a host: the API refuses anything
# else with 400, and the schema documents this very pattern. (Credentials and hosts that
# are not public are refused by the service, with their own message.)
_URI_CHAR = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2}"
_HOST_CHAR = r"[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2}"
WEBHOOK_URL_PATTERN = (
    rf"^https?://(?:(?:{_HOST_CHAR}|:)*@)?(?:(?:{_HOST_CHAR})+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?"
    rf"(?:/(?:{_URI_CHAR})*)?(?:\?(?:{_URI_CHAR})*)?(?:#(?:{_URI_CHAR})*)?$"
)


@extend_schema_field({"type": "string", "format": "uri"})
class WebhookUrlField(serializers.CharField):
    """A webhook endpoint's URL: its shape here, its host by the service."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)
        self.validators.append(
            RegexValidator(WEBHOOK_URL_PATTERN, message="Not an absolute http(s) URI.")
        )

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        try:
            urlsplit(value)  # a bracketed host must be an IPv6 address
        except ValueError:
            raise serializers.ValidationError("Not an absolute http(s) URI.") from None
        return value


class KindsField(serializers.ListField):
    """The kinds an endpoint wants: notification kinds for a tenant's endpoint, platform
    event types for a platform endpoint (the service refuses the other family)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=serializers.ChoiceField(
                choices=[*Notification.Kind.choices, *PlatformEvent.Type.choices]
            ),
            help_text="Kinds to receive; empty or absent: all. A tenant key's endpoint "
            "takes notification kinds, a platform key's platform event types "
            "(period.closed, overage_charge.decided, topup.purchased, limit_rule.changed); "
            "the other family is refused with 400.",
            **kwargs,
        )


def endpoint_owner(request: Request) -> Tenant | None:
    """Whose endpoints the request manages: the key's tenant's, or with a platform key
    (no tenant) the platform's. Each sees and touches only its own."""
    api_key = request.auth
    assert isinstance(api_key, ApiKey)
    return api_key.tenant


class WebhookEndpointsApi(CursorListApi):
    required_scopes = [Scope.WEBHOOKS_MANAGE]
    tenant_required = False  # a platform key manages the platform's endpoints

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "WebhookEndpointRequest"

        url = WebhookUrlField(max_length=500)
        kinds = KindsField(required=False)

    class CreatedSerializer(WebhookEndpointOutputSerializer):
        class Meta:
            ref_name = "WebhookEndpointCreated"

        secret = serializers.CharField(help_text="whsec_… signing secret, shown only now")

    @extend_schema(
        operation_id="webhook_endpoints_list",
        responses={200: WebhookEndpointOutputSerializer(many=True), **problems(400)},
        description="The endpoints of the key's tenant, or with a platform key the "
        "platform's (they receive platform events); never the other's.",
    )
    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoints_owned(tenant=endpoint_owner(request)).filter(
            deleted_at__isnull=True
        )
        return self.page_of(request, endpoints, WebhookEndpointOutputSerializer)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=InputSerializer,
        responses={201: CreatedSerializer, **problems(400)},
        description="Register an endpoint: with a tenant key for the tenant's "
        "notifications, with a platform key for platform events (docs/API.md, "
        "Platform events). Its signing secret is in this answer only. URLs "
        "that resolve to private, loopback or link-local addresses are refused.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(serializer.validated_data)
        endpoint = webhook_endpoint_create(
            tenant=endpoint_owner(request), url=data["url"], kinds=data.get("kinds")
        )
        return Response(self.CreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]
    tenant_required = False

    class UpdateSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "WebhookEndpointUpdate"

        url = WebhookUrlField(max_length=500, required=False)
        kinds = KindsField(required=False)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=UpdateSerializer,
        responses={200: WebhookEndpointOutputSerializer, **problems(400)},
        description="Change an endpoint's URL and/or kinds (absent: unchanged; kinds [] "
        "means all), refused as at creation; the secret stays.",
    )
    def patch(self, request: Request, endpoint_id: UUID) -> Response:
        serializer = self.UpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(serializer.validated_data)
        endpoint = webhook_endpoint_update(
            tenant=endpoint_owner(request), public_id=endpoint_id, url=data.get("url"),
            kinds=data.get("kinds"),
        )  # fmt: skip
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_delete",
        responses={204: None},
        description="Stop sending to an endpoint; its pending deliveries are cancelled.",
    )
    def delete(self, request: Request, endpoint_id: UUID) -> Response:
        webhook_endpoint_delete(tenant=endpoint_owner(request), public_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]
    tenant_required = False

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "WebhookEndpointSecret"

        id = serializers.UUIDField()
        secret = serializers.CharField(help_text="The new whsec_… secret, shown only now")

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        request=None,
        responses={200: OutputSerializer},
        description="Give the endpoint a new signing secret, in this answer only: from now "
        "on every delivery, retries of older messages included, is signed with it alone.",
    )
    def post(self, request: Request, endpoint_id: UUID) -> Response:
        secret = webhook_endpoint_secret_rotate(
            tenant=endpoint_owner(request), public_id=endpoint_id
        )
        return Response(self.OutputSerializer({"id": endpoint_id, "secret": secret}).data)
