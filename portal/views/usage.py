"""Usage (``/usage/``): a period's usage per channel as charts and tables, and its CSV."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from metering.usage import usage_chart
from portal.access import member_required
from portal.layout import render_page
from portal.usage import oldest_period_ago, usage_csv, usage_page_for, usage_query


@member_required()
def usage(request: HttpRequest) -> HttpResponse:
    """The chart of the period and granularity asked for; what cannot be shown (a period
    out of reach or before the account began, an unknown granularity) falls back to the
    default, with a note."""
    tenant = request.tenant  # type: ignore[attr-defined]
    oldest = oldest_period_ago(tenant=tenant)
    query = usage_query(request.GET, oldest=oldest)
    data = usage_page_for(
        tenant=tenant,
        periods_ago=query.periods_ago,
        granularity=query.granularity,
        language=(get_language() or "en")[:2],
        oldest=oldest,
    )
    return render_page(request, "portal/usage.html", {"usage": data, "problems": query.problems})


@member_required()
def usage_export(request: HttpRequest) -> HttpResponse:
    """``/usage/export.csv?period=N&granularity=day|hour``: the page's figures as CSV; a
    parameter out of range (a period before the account began too) answers 400 with the
    reason."""
    tenant = request.tenant  # type: ignore[attr-defined]
    oldest = oldest_period_ago(tenant=tenant)
    query = usage_query(request.GET, oldest=oldest)
    if query.problems:
        return HttpResponse(
            _(
                "Ask for a period from 0 (this one) to %(oldest)s (your account's first) "
                "and a granularity of day or hour."
            )
            % {"oldest": oldest},
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    chart = usage_chart(tenant=tenant, periods_ago=query.periods_ago, granularity=query.granularity)
    name = f"usage-{tenant.slug}-{chart.bounds.label}-{query.granularity}.csv"
    # At most a month of hours per channel: small enough to answer whole.
    response = HttpResponse("".join(usage_csv(chart)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
