"""HTTP API of the rules engine: authorizations and top-up offers."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from creditguard.api.fields import StrictIntegerField
from creditguard.api.pagination import CursorListApi
from creditguard.api.parsers import optional_body
from creditguard.api.schema import problems
from creditguard.api.serializers import StrictInputSerializer
from creditguard.errors import InvalidInput, input_error
from metering.models import Authorization
from metering.selectors import authorization_state
from policies.models import PolicyAcknowledgement, TopUpOffer
from policies.services.authorization_settle import authorization_commit, authorization_release
from policies.services.authorize import authorization_create
from policies.services.policy import policy_acknowledge, policy_current, policy_upcoming
from policies.services.topups import topup_offer_accept
from tenants.authentication import request_tenant
from tenants.models import Scope


class AuthorizationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    channel = serializers.SerializerMethodField()
    quantity = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=Authorization.Decision.choices)
    reason = serializers.SerializerMethodField(
        help_text="Why it was denied (tenant_suspended, channel_suspended, channel_restricted, "
        "hard_limit_reached, channel_inactive), 'overage' for allow_overage, else null."
    )
    status = serializers.ChoiceField(choices=Authorization.Status.choices)
    remaining = serializers.IntegerField(
        source="remaining_after", help_text="Credits left after this reservation"
    )
    overage_units = serializers.IntegerField(
        source="overage_after", help_text="Units of this authorization beyond the credits"
    )
    committed_quantity = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField(
        allow_null=True,
        help_text="A denial by a windowed cap (channel_restricted) or a staff suspension with "
        "an end: when asking again can be allowed (the cap's next window, or the "
        "restriction's end). Null otherwise, and when waiting alone will not help (a "
        "permanent suspension, a request larger than the cap, credits or the hard limit).",
    )

    def get_channel(self, obj: Authorization) -> str:
        return obj.channel.code

    def get_reason(self, obj: Authorization) -> str | None:
        return obj.reason or None


def authorization_body(authorization: Authorization) -> dict[str, Any]:
    """What AuthorizationOutputSerializer documents, built directly: the authorization
    path is hot, and a serializer instance costs as much as the decision."""
    expires_at, retry_at = authorization.expires_at, authorization.retry_at
    return {
        "id": str(authorization.public_id),
        "channel": authorization.channel.code,
        "quantity": authorization.quantity,
        "decision": authorization.decision,
        "reason": authorization.reason or None,
        "status": authorization.status,
        "remaining": authorization.remaining_after,
        "overage_units": authorization.overage_after,
        "committed_quantity": authorization.committed_quantity,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "retry_at": retry_at.astimezone(UTC).isoformat() if retry_at else None,
    }


def parse_authorization_request(data: Any) -> tuple[Any, Any, Any]:
    """The body of POST /authorizations, checked by lean code (the service checks the
    values): an object with ``channel``, ``quantity`` and optionally ``idempotency_key``."""
    if not isinstance(data, dict):
        raise InvalidInput(
            "The body must be a JSON object.",
            errors=[input_error([], "expected an object")],
        )
    errors = [
        input_error([key], "unknown field")
        for key in sorted(data.keys() - {"channel", "quantity", "idempotency_key"})
    ]
    errors += [
        input_error([key], "this field is required")
        for key in ("channel", "quantity")
        if key not in data
    ]
    if "channel" in data and not isinstance(data["channel"], str):
        errors.append(input_error(["channel"], "must be a string"))
    if errors:
        raise InvalidInput("The authorization request is not valid.", errors=errors)
    return data["channel"], data["quantity"], data.get("idempotency_key")


class AuthorizationsApi(APIView):
    required_scopes = [Scope.USAGE_WRITE]

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "AuthorizationRequest"

        # Documents the contract; the hot path checks with parse_authorization_request.
        channel = serializers.CharField(max_length=32)
        quantity = StrictIntegerField(min_value=1)
        idempotency_key = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        operation_id="authorizations_create",
        request=InputSerializer,
        responses={200: AuthorizationOutputSerializer, **problems(400, 409, 422)},
        description=(
            "Decide whether the tenant may send `quantity` units on `channel` now and, if "
            "allowed, reserve them until committed, released or expired. The same "
            "idempotency key answers the same; with another channel or quantity, 409; "
            "422 `period_closed` when the current period closed meanwhile."
        ),
    )
    def post(self, request: Request) -> Response:
        channel, quantity, idempotency_key = parse_authorization_request(request.data)
        authorization = authorization_create(
            tenant=request_tenant(request),
            channel_code=channel,
            quantity=quantity,
            idempotency_key=idempotency_key,
        )
        return Response(authorization_body(authorization))


class AuthorizationApi(APIView):
    # A read, as GET /balances and /usage: whoever watches the tenant's sending may ask
    # how an authorization stands (docs/API.md, "Authentication").
    required_scopes = [Scope.USAGE_READ]

    @extend_schema(
        operation_id="authorizations_retrieve",
        responses={200: AuthorizationOutputSerializer},
        description=(
            "The authorization as it stands now: `held` (until `expires_at`), "
            "`committed` (`committed_quantity` booked as usage), `released`, `expired` "
            "(also a held one past `expires_at` that the sweeper has not ended yet) or "
            "`denied` (with its `reason` and `retry_at`). Another tenant's id is a 404."
        ),
    )
    def get(self, request: Request, authorization_id: UUID) -> Response:
        authorization = authorization_state(
            tenant=request_tenant(request), public_id=authorization_id
        )
        return Response(authorization_body(authorization))


class AuthorizationCommitApi(APIView):
    required_scopes = [Scope.USAGE_WRITE]

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "AuthorizationCommit"

        quantity = StrictIntegerField(min_value=1, required=False)

    @extend_schema(
        operation_id="authorizations_commit",
        request=InputSerializer,
        responses={200: AuthorizationOutputSerializer, **problems(400, 409, 422)},
        description="Turn the reservation into usage (all of it, or `quantity` ≤ reserved). "
        "Idempotent.",
    )
    def post(self, request: Request, authorization_id: UUID) -> Response:
        data = _strict(self.InputSerializer, optional_body(request))
        authorization = authorization_commit(
            tenant=request_tenant(request),
            public_id=authorization_id,
            quantity=data.get("quantity"),
        )
        return Response(authorization_body(authorization))


class AuthorizationReleaseApi(APIView):
    required_scopes = [Scope.USAGE_WRITE]

    @extend_schema(
        operation_id="authorizations_release",
        request=None,
        responses={200: AuthorizationOutputSerializer, **problems(409)},
        description="Give the reservation back. Idempotent.",
    )
    def post(self, request: Request, authorization_id: UUID) -> Response:
        authorization = authorization_release(
            tenant=request_tenant(request), public_id=authorization_id
        )
        return Response(authorization_body(authorization))


class TopUpOfferOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    channel = serializers.CharField(source="channel.code")
    units = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=TopUpOffer.Status.choices)
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class TopUpOffersApi(CursorListApi):
    required_scopes = [Scope.USAGE_WRITE]

    @extend_schema(
        operation_id="topup_offers_list",
        responses={200: TopUpOfferOutputSerializer(many=True), **problems(400)},
        description="The tenant's open top-up offers, newest first (cursor-paginated).",
    )
    def get(self, request: Request) -> Response:
        offers = (
            TopUpOffer.objects.for_tenant(request_tenant(request))
            .filter(status=TopUpOffer.Status.OPEN, expires_at__gt=timezone.now())
            .select_related("channel")
        )
        return self.page_of(request, offers, TopUpOfferOutputSerializer)


class TopUpOfferAcceptApi(APIView):
    required_scopes = [Scope.USAGE_WRITE]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TopUp"

        offer = serializers.UUIDField(source="offer.public_id")
        channel = serializers.CharField(source="channel.code")
        units = serializers.IntegerField()
        price = serializers.DecimalField(max_digits=14, decimal_places=2)
        currency = serializers.CharField()
        period = serializers.CharField(source="period.label")
        booked_at = serializers.DateTimeField(source="created_at")

    @extend_schema(
        operation_id="topup_offers_accept",
        request=None,
        responses={200: OutputSerializer, **problems(409)},
        description="Accept an open offer: its credits are booked at once, and its fee; "
        "accepting again answers the same, booking nothing more.",
    )
    def post(self, request: Request, offer_id: UUID) -> Response:
        topup = topup_offer_accept(tenant=request_tenant(request), public_id=offer_id)
        return Response(self.OutputSerializer(topup).data)


def _strict(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class PolicyApi(APIView):
    required_scopes = [Scope.USAGE_READ]

    @extend_schema(
        operation_id="policy_retrieve",
        responses={
            200: inline_serializer(
                "Policy",
                {
                    "current": serializers.JSONField(),
                    "upcoming": serializers.JSONField(allow_null=True),
                    "support": serializers.CharField(),
                },
            ),
        },
        description="The fair use policy in force (in the tenant's language), the next "
        "published version if any, and whether the tenant acknowledged each.",
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        acknowledged = set(
            PolicyAcknowledgement.objects.for_tenant(tenant).values_list(
                "version__label", flat=True
            )
        )

        def body(version: Any) -> dict[str, Any] | None:
            if version is None:
                return None
            return {
                "version": version.label,
                "effective_from": version.effective_from.isoformat(),
                "material": version.material,
                "text": version.text(tenant.language),
                # What changes, in a few lines; required of a version published ahead.
                "summary": version.summary(tenant.language),
                "acknowledged": version.label in acknowledged,
            }

        return Response(
            {
                "current": body(policy_current()),
                "upcoming": body(policy_upcoming()),
                "support": settings.SUPPORT_CONTACT,
            }
        )


class PolicyAcknowledgeApi(APIView):
    required_scopes = [Scope.USAGE_READ]

    class InputSerializer(StrictInputSerializer):
        class Meta:
            ref_name = "PolicyAcknowledgement"

        version = serializers.CharField(
            required=False, help_text="Default: the upcoming, else current"
        )

    @extend_schema(
        operation_id="policy_acknowledge",
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "PolicyAcknowledged",
                {
                    "version": serializers.CharField(),
                    "acknowledged_at": serializers.DateTimeField(),
                },
            ),
            **problems(400, 404),
        },
        description="Acknowledge a published policy version. Idempotent.",
    )
    def post(self, request: Request) -> Response:
        data = _strict(self.InputSerializer, optional_body(request))
        api_key = request.auth
        acknowledgement = policy_acknowledge(
            tenant=request_tenant(request),
            label=data.get("version"),
            by=f"API key {getattr(api_key, 'prefix', '')}",
        )
        return Response(
            {
                "version": acknowledgement.version.label,
                "acknowledged_at": acknowledgement.acknowledged_at.isoformat(),
            }
        )
