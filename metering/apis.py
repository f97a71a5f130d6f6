"""HTTP API of metering: usage ingestion and usage series. (The balances, which also say
what is owed, are a view over policies too: ``policies.balances_api``.)

Views are thin: parse input, call one service or selector, render output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from creditguard.api.fields import AwareDateTimeField
from creditguard.api.schema import problems, strict_inline_serializer
from creditguard.api.serializers import StrictInputSerializer
from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from metering.usage import (
    GRANULARITIES,
    MAX_BUCKETS,
    bucket_count,
    usage_edge_unkept,
    usage_series,
)
from tenants.authentication import request_tenant
from tenants.models import Scope


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 in its own zone, or in UTC when that zone's offset then had
    seconds (local mean time before standard zones, e.g. +00:53:28 in Berlin before 1893),
    which RFC 3339 cannot write."""
    offset = moment.utcoffset()
    if offset is not None and offset.total_seconds() % 60:
        moment = moment.astimezone(UTC)
    return moment.isoformat()


class UsageEventsApi(APIView):
    required_scopes = [Scope.USAGE_WRITE]

    class EventSerializer(StrictInputSerializer):
        # Documents the contract; the hot path validates with lean code
        # (metering.services.usage_validation.usage_batch_validate), not a serializer per event.
        id = serializers.CharField(max_length=200, help_text="Client event id, unique per tenant")
        channel = serializers.CharField(help_text="Channel code, e.g. sms")
        quantity = serializers.IntegerField(min_value=1, max_value=settings.USAGE_MAX_QUANTITY)
        occurred_at = serializers.DateTimeField(help_text="ISO 8601 with offset")
        metadata = serializers.DictField(required=False)

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()

        class Meta:
            ref_name = "UsageEventsResult"

    @extend_schema(
        operation_id="usage_events_create",
        request=strict_inline_serializer(
            "UsageEventBatch",
            {
                "events": serializers.ListField(
                    child=EventSerializer(),
                    min_length=1,
                    max_length=settings.USAGE_MAX_EVENTS_PER_BATCH,
                )
            },
        ),
        responses={200: OutputSerializer, **problems(400, 409, 422)},
        description=(
            "Record a batch of 1 to 1000 usage events, all or nothing. An id already "
            "recorded with the same content is a duplicate; with other content, 409 "
            "naming the ids. Invalid events answer 400 naming each index and field; "
            "events of a closed billing period answer 422."
        ),
    )
    def post(self, request: Request) -> Response:
        result = usage_record_batch(tenant=request_tenant(request), payload=request.data)
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates},
            status=status.HTTP_200_OK,
        )


class UsageApi(APIView):
    required_scopes = [Scope.USAGE_READ]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageQuery"

        channel = serializers.SlugField(required=False)
        granularity = serializers.ChoiceField(choices=list(GRANULARITIES), default="day")
        # "from" is a Python keyword; the query parameter is mapped in to_internal_value().
        start = AwareDateTimeField(required=False)
        to = AwareDateTimeField(required=False)

        def to_internal_value(self, data: Any) -> Any:
            raw = {key: data.get(key) for key in data}
            if "from" in raw:
                raw["start"] = raw.pop("from")
            unknown = set(raw) - {"channel", "granularity", "start", "to"}
            if unknown:
                raise serializers.ValidationError({key: ["unknown parameter"] for key in unknown})
            try:
                return super().to_internal_value(raw)
            except serializers.ValidationError as exc:
                detail = exc.detail
                if isinstance(detail, dict) and "start" in detail:
                    detail["from"] = detail.pop("start")
                raise serializers.ValidationError(detail) from exc

    @extend_schema(
        operation_id="usage_series",
        parameters=[
            OpenApiParameter("channel", str, description="A channel code; all channels if absent"),
            OpenApiParameter(
                "from", datetime, description="Start (ISO 8601); default: period start"
            ),
            OpenApiParameter(
                "to",
                datetime,
                description="End, exclusive (ISO 8601); default: now, and the quarter hour "
                "holding it counts whole (every event recorded in it so far)",
            ),
            OpenApiParameter("granularity", str, enum=list(GRANULARITIES), default="day"),
        ],
        responses={
            200: inline_serializer(
                "UsageSeries",
                {
                    "from": serializers.DateTimeField(),
                    "to": serializers.DateTimeField(),
                    "granularity": serializers.CharField(),
                    "series": inline_serializer(
                        "ChannelSeries",
                        {
                            "channel": serializers.CharField(),
                            "unit": serializers.CharField(),
                            "total": serializers.IntegerField(),
                            "points": inline_serializer(
                                "UsagePoint",
                                {
                                    "start": serializers.DateTimeField(),
                                    "quantity": serializers.IntegerField(),
                                },
                                many=True,
                            ),
                        },
                        many=True,
                    ),
                },
            ),
            **problems(400),
        },
        description="Usage over time per channel, in the tenant's time zone, zero-filled.",
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        now = timezone.now()
        granularity = data["granularity"]
        end = data.get("to") or now
        start = data.get("start")
        if start is None:
            start = period_bounds(tenant=tenant, at=min(end, now)).starts_at
        if start >= end:
            raise serializers.ValidationError({"from": "must lie before 'to'"})
        if bucket_count(start, end, granularity) > MAX_BUCKETS:
            raise serializers.ValidationError(
                {"granularity": f"more than {MAX_BUCKETS} buckets in the range; use a coarser one"}
            )
        for field, moment in (("from", start), ("to", end)):
            archived = usage_edge_unkept(moment, now=now)
            if archived is not None:
                raise serializers.ValidationError(
                    {
                        field: f"the events of {archived:%Y-%m} are archived and its usage is "
                        "kept per quarter hour: give a time on a quarter hour "
                        "(minutes 00, 15, 30 or 45, no seconds)"
                    }
                )
        code = data.get("channel")
        if code:
            channels = list(Channel.objects.filter(code=code))
            if not channels:
                raise serializers.ValidationError({"channel": f"unknown channel {code!r}"})
        else:
            channels = list(Channel.objects.filter(active=True))
        series = usage_series(
            tenant=tenant, start=start, end=end, granularity=granularity, channels=channels,
            through_now=data.get("to") is None,
        )  # fmt: skip
        tz = tenant.tzinfo
        return Response(
            {
                "from": rfc3339(start.astimezone(tz)),
                "to": rfc3339(end.astimezone(tz)),
                "granularity": granularity,
                "series": [
                    {
                        **item,
                        "points": [
                            {"start": rfc3339(p["start"]), "quantity": p["quantity"]}
                            for p in item["points"]
                        ],
                    }
                    for item in series
                ],
            }
        )
