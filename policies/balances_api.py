"""GET /api/v1/balances: the current period's balance per channel, and what the tenant
owes for it so far.

It lives here, above metering, because the answer is a face over two layers: the
balances are metering's (``metering.selectors.balances_for_tenant``), the money is
policies' — overage charges priced by the fee schedules the tenant was told of, and
top-ups bought. A view may read both from up here; metering's own logic reads the rules
through its hook (``metering.hooks``) only because it must not import policies, and
has no need of the money.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metering.selectors import ChannelBalance, balances_for_tenant
from policies.models import OverageCharge
from policies.selectors import charge_owed, period_owed
from tenants.authentication import request_tenant
from tenants.models import Scope

MONEY_HELP = 'A decimal string with the currency\'s minor-unit digits ("12.30"; JPY "1230")'


class OverageChargeSerializer(serializers.Serializer):
    units = serializers.IntegerField(help_text="Units over the credits when last priced")
    carried_units = serializers.IntegerField(
        help_text="Of those, carried into the next period's credits (not charged)"
    )
    amount = serializers.CharField(
        help_text="The fee of the units charged, each priced by the fee schedule in effect "
        "for the tenant when it was used (per the notice rules). " + MONEY_HELP
    )
    currency = serializers.CharField()
    fee_schedule = serializers.CharField(allow_null=True, help_text="The schedule last in effect")
    status = serializers.ChoiceField(choices=OverageCharge.Status.choices)
    owed = serializers.CharField(
        help_text="`amount` while pending; once decided, the part billed. " + MONEY_HELP
    )
    priced_at = serializers.DateTimeField(help_text="When the evaluation last priced it")


class ChannelBalanceSerializer(serializers.Serializer):
    channel = serializers.CharField(source="channel.code")
    unit = serializers.CharField(source="channel.unit")
    included = serializers.IntegerField()
    promotional = serializers.IntegerField()
    topped_up = serializers.IntegerField()
    available = serializers.IntegerField()
    used = serializers.IntegerField()
    reserved = serializers.IntegerField()
    remaining = serializers.IntegerField()
    hard_limit = serializers.IntegerField(allow_null=True)
    overage_units = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["ok", "near_limit", "at_limit", "over_limit", "restricted", "suspended"]
    )
    action_past_limit = serializers.CharField(source="action")
    thresholds_crossed = serializers.ListField(child=serializers.IntegerField())
    forecast = serializers.SerializerMethodField()
    overage_charge = serializers.SerializerMethodField()

    def get_forecast(self, obj: ChannelBalance) -> dict[str, Any]:
        reached = obj.forecast_limit_reached_at
        return {
            "projected_used": obj.forecast_used,
            "limit_reached_at": reached.isoformat() if reached else None,
        }

    @extend_schema_field(OverageChargeSerializer(allow_null=True))
    def get_overage_charge(self, obj: ChannelBalance) -> dict[str, Any] | None:
        charge = self.context["charges"].get(obj.channel.pk)
        if charge is None:
            return None
        return {
            "units": charge.units,
            "carried_units": charge.carried_units,
            "amount": str(charge.amount),
            "currency": charge.currency,
            "fee_schedule": charge.schedule.name if charge.schedule else None,
            "status": charge.status,
            "owed": str(charge_owed(charge)),
            "priced_at": charge.updated_at.isoformat(),
        }


class BalancesApi(APIView):
    required_scopes = [Scope.USAGE_READ]

    @extend_schema(
        operation_id="balances_list",
        responses={
            200: inline_serializer(
                "Balances",
                {
                    "period": inline_serializer(
                        "BalancePeriod",
                        {
                            "label": serializers.CharField(),
                            "starts_at": serializers.DateTimeField(),
                            "ends_at": serializers.DateTimeField(),
                            "status": serializers.CharField(),
                        },
                    ),
                    "channels": ChannelBalanceSerializer(many=True),
                    "amount_owed": inline_serializer(
                        "AmountOwed",
                        {
                            "currency": serializers.CharField(),
                            "overage": serializers.CharField(help_text=MONEY_HELP),
                            "topups": serializers.CharField(help_text=MONEY_HELP),
                            "total": serializers.CharField(help_text=MONEY_HELP),
                        },
                        many=True,
                        help_text="What the tenant owes for the period so far, one entry "
                        "per currency (amounts of two currencies are never added): the "
                        "channels' overage charges (`owed`) and the top-ups bought.",
                    ),
                },
            ),
        },
        description="The current billing period's balance per channel, and the amount "
        "owed for it so far with its currency.",
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        result = balances_for_tenant(tenant=tenant)
        owed = period_owed(tenant=tenant, period=result.period)
        tz = tenant.tzinfo
        channels = ChannelBalanceSerializer(
            result.channels, many=True, context={"charges": owed.charges}
        )
        return Response(
            {
                "period": {
                    "label": result.bounds.label,
                    "starts_at": result.bounds.starts_at.astimezone(tz).isoformat(),
                    "ends_at": result.bounds.ends_at.astimezone(tz).isoformat(),
                    "status": result.period.status if result.period else "open",
                },
                "channels": channels.data,
                "amount_owed": [
                    {
                        "currency": row.currency,
                        "overage": str(row.overage),
                        "topups": str(row.topups),
                        "total": str(row.total),
                    }
                    for row in owed.by_currency
                ],
            }
        )
