"""HTTP API for billing systems: the export and the line items of a period, as JSON
pages (an opaque ``next`` cursor) or as one streamed CSV, for a platform key (every
tenant, or ``tenant=slug``) or a tenant key (its own). Scope ``billing:read``."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from billing.selectors import (
    EXPORT_FIELDS,
    FINAL,
    LINE_ITEM_FIELDS,
    export_balances,
    export_etag,
    export_record,
    export_rows,
    export_values,
    line_item_record,
    line_items,
)
from creditguard.api.fields import instant_parse
from creditguard.api.pagination import CursorListApi, NewestFirstCursorPagination
from creditguard.api.renderers import JSONRenderer
from creditguard.api.schema import problems
from tenants.models import ApiKey, Scope, Tenant

PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
CHUNK_ROWS = 500  # rows fetched per round trip of the server-side cursor, and per write


class CsvRenderer(JSONRenderer):
    """Chooses CSV (``format=csv`` or ``Accept: text/csv``); the rows are streamed by the
    view, so this renders only the problems a CSV request can get, as problem+json."""

    media_type = "text/csv"
    format = "csv"


def csv_stream(fields: list[str], chunks: Iterable[Iterable[Sequence[Any]]]) -> Iterator[bytes]:
    """A header row and the rows of each chunk (RFC 4180 quoting, CRLF, UTF-8), one
    write per chunk (``CHUNK_ROWS`` rows): memory holds one chunk, whatever the number
    of rows. One writer and one buffer for the whole stream."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for chunk in chunks:
        writer.writerows(chunk)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no rows: the header alone
        yield buffer.getvalue().encode()


def _chunked(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        yield chunk


def _scope(request: Request) -> Tenant | None:
    """The tenant the request covers: a tenant key's own (``tenant`` may only name it),
    or, for a platform key, the one ``tenant`` names (404 if none) or all (None)."""
    api_key = request.auth
    assert isinstance(api_key, ApiKey)
    slug = request.query_params.get("tenant")
    if api_key.tenant is not None:
        if slug is not None and slug != api_key.tenant.slug:
            raise exceptions.NotFound("No such tenant for this key.")
        return api_key.tenant
    if slug is None:
        return None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise exceptions.NotFound("No such tenant.")
    return tenant


def _period(request: Request) -> str:
    period = request.query_params.get("period", "")
    if not PERIOD.fullmatch(period):
        raise exceptions.ValidationError({"period": ["a month as YYYY-MM, e.g. 2026-11"]})
    return period


class BillingApi(CursorListApi):
    required_scopes = [Scope.BILLING_READ]
    tenant_required = False
    renderer_classes = [JSONRenderer, CsvRenderer]

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # ``format`` is DRF's override; an unknown one is a 400 here, not DRF's 404.
        if not force and request.query_params.get("format", "json") not in ("json", "csv"):
            raise exceptions.ValidationError({"format": ["json or csv"]})
        negotiated: tuple[BaseRenderer, str] = super().perform_content_negotiation(request, force)
        return negotiated

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # Rendered here, then the data dropped: DRF keeps the view and its response in a
        # reference cycle (view.response, response.renderer_context["view"]), so a page's
        # rows (4 MB at 1000) would outlive the request until the cycle collector ran, and
        # the worker grew by pages (bench.export). Nothing reads ``data`` once rendered.
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response.render()
            response.data = None
            # And the rendered bytes, a cycle too (renderer_context holds the response).
            response.renderer_context = {}  # type: ignore[attr-defined]  # set by DRF
        return response

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The view is in a cycle with its request (request.parser_context["view"]) and
        # keeps the response as ``self.response``: let go of it, so that the response and
        # its page are freed once sent, by reference count (bench.export: the worker grew
        # by a page's bytes a request until the cycle collector ran).
        response = super().dispatch(request, *args, **kwargs)
        del self.response
        return response

    @staticmethod
    def wants_csv(request: Request) -> bool:
        return getattr(request.accepted_renderer, "format", "json") == "csv"

    def conditional(
        self, request: Request, etag: str | None, respond: Callable[[], HttpResponse]
    ) -> HttpResponse:
        """``respond()`` with ``etag``, or 304 when the client holds it already."""
        if etag is not None and etag in request.headers.get("If-None-Match", ""):
            return HttpResponse(status=304, headers={"ETag": etag})
        response = respond()
        if etag is not None:
            response["ETag"] = etag
        return response


class ExportPagination(NewestFirstCursorPagination):
    """Pages of the export in balance id order: a balance opened during a read sorts
    after every row read, so pages neither skip nor repeat a row."""

    ordering = ("id",)
    page_size = 500
    max_page_size = 1000

    def position_check(self, position: str) -> None:
        if not (position.isascii() and position.isdigit()):
            raise ValueError(position)


_string = {"type": "string"}
COMMON_PARAMETERS = [
    OpenApiParameter("period", str, required=True, pattern=PERIOD.pattern,
                     description="The billing month, YYYY-MM in each tenant's time zone"),
    OpenApiParameter("format", str, enum=["json", "csv"], description=(
        "json (default): pages with a `next` cursor; csv: every row in one streamed "
        "response (as `Accept: text/csv`)")),
    OpenApiParameter("tenant", str, description=(
        "A tenant's slug: with a platform key, only that tenant; a tenant key may name "
        "only its own")),
]  # fmt: skip


class ExportRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Stable row id")
    tenant_id = serializers.IntegerField()
    tenant_slug = serializers.CharField()
    tenant_name = serializers.CharField()
    channel = serializers.CharField()
    period = serializers.CharField(help_text="YYYY-MM")
    period_start = serializers.DateTimeField(help_text="In the tenant's time zone")
    period_end = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["provisional", "final"])
    currency = serializers.CharField()
    included_units = serializers.IntegerField()
    promotional_units = serializers.IntegerField()
    topped_up_units = serializers.IntegerField()
    carried_in_units = serializers.IntegerField()
    used_units = serializers.IntegerField()
    overage_units = serializers.IntegerField()
    carried_over_units = serializers.IntegerField()
    overage_fee = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    billed_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    waived_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    decision_status = serializers.ChoiceField(
        choices=["pending", "billed", "waived", "partly_waived"], allow_null=True
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    topup_count = serializers.IntegerField()
    topup_amount = serializers.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ref_name = "BillingExportRow"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return export_record(instance)


class BillingExportApi(BillingApi):
    pagination_class = ExportPagination

    @extend_schema(
        operation_id="billing_export",
        parameters=COMMON_PARAMETERS,
        responses={
            (200, "application/json"): ExportRowSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            304: OpenApiResponse(description="Not modified (If-None-Match, a final period)"),
            **problems(400, 404, 409),
        },
        description=(
            "One row per tenant × channel with a balance in the period: credits, usage, "
            "overage, its fee and decision, top-up purchases. Money is a decimal string "
            "in the currency's minor unit. `provisional` while the period is open, "
            "`final` once closed; a final export carries an ETag. 409 `mixed_currencies` "
            "when a row's top-ups are priced in another currency than the row's."
        ),
    )
    def get(self, request: Request) -> HttpResponse:
        period, tenant = _period(request), _scope(request)
        if self.wants_csv(request):
            # Called now, not when streamed: it refuses mixed currencies (409) while a
            # response can still say so.
            chunks = export_rows(period=period, tenant=tenant, chunk_rows=CHUNK_ROWS)
            etag = export_etag(period=period, tenant=tenant, variant="export.csv")
            return self.conditional(request, etag, lambda: _csv_response(
                f"creditguard-export-{period}.csv", EXPORT_FIELDS,
                (map(export_values, chunk) for chunk in chunks)))  # fmt: skip
        return self.export_page(request, period, tenant)

    def export_page(self, request: Request, period: str, tenant: Tenant | None) -> HttpResponse:
        """A page keyed on the balances' ids (one cheap statement), then its rows by
        those ids. ``page_of`` without a serializer instance: DRF's list data and its
        serializer refer to each other, a cycle that would keep the page after the
        request.

        A page whose rows are all final carries an ETag, a digest of the page: what a
        final row can still change (a pending charge's decision) changes it, and it
        costs no statement over the whole period each page, as ``export_etag`` does."""
        paginator = self.pagination_class()
        balances = export_balances(period=period, tenant=tenant)
        page = paginator.paginate_queryset(balances, request, view=self) or []
        chunks = export_rows(
            period=period, tenant=tenant, balance_ids=[balance["id"] for balance in page]
        )
        records = [export_record(row) for chunk in chunks for row in chunk]
        response = paginator.get_paginated_response(records)
        if not records or any(record["status"] != FINAL for record in records):
            return response
        etag = '"' + hashlib.sha256(orjson.dumps(response.data)).hexdigest()[:32] + '"'
        return self.conditional(request, etag, lambda: response)


def _csv_response(
    filename: str, fields: list[str], chunks: Iterable[Iterable[Sequence[Any]]]
) -> Any:
    response = StreamingHttpResponse(
        csv_stream(fields, chunks), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class LineItemSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stable: topup_<uuid> or overage_charge_<n>")
    kind = serializers.ChoiceField(choices=["topup", "overage_charge"])
    tenant_id = serializers.IntegerField()
    tenant_slug = serializers.CharField()
    channel = serializers.CharField()
    period = serializers.CharField()
    occurred_at = serializers.DateTimeField(help_text="Bought, or decided")
    units = serializers.IntegerField(help_text="Bought, or charged (overage not carried)")
    list_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    waived_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="To invoice")
    currency = serializers.CharField()
    decision_status = serializers.ChoiceField(
        choices=["billed", "waived", "partly_waived"], allow_null=True
    )

    class Meta:
        ref_name = "BillingLineItem"


class LineItemPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    results = LineItemSerializer(many=True)

    class Meta:
        ref_name = "BillingLineItemPage"


def _encode(position: tuple[datetime, str]) -> str:
    raw = json.dumps([position[0].isoformat(), position[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(item_id, str):
            raise ValueError(item_id)
        return instant_parse(str(at)), item_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise exceptions.ValidationError({"cursor": ["invalid cursor"]}) from None


class BillingLineItemsApi(BillingApi):
    @extend_schema(
        operation_id="billing_line_items",
        parameters=[
            *COMMON_PARAMETERS,
            OpenApiParameter("cursor", str, description="`next` of the previous page"),
            OpenApiParameter("page_size", int, description="1 to 1000 (default 500)"),
        ],
        responses={
            (200, "application/json"): LineItemPageSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            304: OpenApiResponse(description="Not modified (If-None-Match, a final period)"),
            **problems(400, 404),
        },
        description=(
            "One row per billable fact of the period — each top-up purchase, each decided "
            "overage charge — with a stable id to import each exactly once, in the order "
            "they happened: a new fact sorts last."
        ),
    )  # fmt: skip
    def get(self, request: Request) -> HttpResponse:
        period, tenant = _period(request), _scope(request)
        if self.wants_csv(request):
            items = line_items(period=period, tenant=tenant).iterator(chunk_size=CHUNK_ROWS)
            etag = export_etag(period=period, tenant=tenant, variant="line-items.csv")
            return self.conditional(request, etag, lambda: _csv_response(
                f"creditguard-line-items-{period}.csv", LINE_ITEM_FIELDS,
                _chunked([record[field] for field in LINE_ITEM_FIELDS]
                         for record in map(line_item_record, items))))  # fmt: skip
        size = ExportPagination().get_page_size(request)
        raw_cursor = request.query_params.get("cursor")
        after = _decode(raw_cursor) if raw_cursor is not None else None
        etag = export_etag(period=period, tenant=tenant, variant=request.get_full_path())

        def page() -> Response:
            rows = list(line_items(period=period, tenant=tenant, after=after)[: size + 1])
            more = len(rows) > size
            rows = rows[:size]
            next_url = None
            if more:
                cursor = _encode((rows[-1][6], rows[-1][0]))
                next_url = replace_query_param(request.build_absolute_uri(), "cursor", cursor)
            return Response({"next": next_url, "results": [line_item_record(r) for r in rows]})

        return self.conditional(request, etag, page)
