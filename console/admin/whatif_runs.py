"""What-if runs (issue 13): a what-if applied to more than ``WHATIF_BACKGROUND_THRESHOLD``
tenants runs as a worker task (``policies.services.whatif_runs``); its page shows the
progress (done of total, changed, notified, status) and refreshes itself until the run
ends, then says what it did. The list of runs is read-only and linked from the what-if
page; every role sees it (``policies.view_whatifrun``), starting one is applying a
what-if (``console.admin.whatif``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from policies.models import WhatIfRun

REFRESH_SECONDS = 2


@admin.register(WhatIfRun)
class WhatIfRunAdmin(admin.ModelAdmin):
    list_display = ["run", "scope", "status", "progress", "changed", "notified", "actor",
                    "created_at", "finished_at"]  # fmt: skip
    list_display_links = None  # a run's page is its progress (``run``)
    list_filter = ["status"]
    list_select_related = ["actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a run is history

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("tenant_ids")

    @admin.display(description="run", ordering="id")
    def run(self, obj: WhatIfRun) -> str:
        url = reverse("admin:policies_whatifrun_progress", args=[obj.pk])
        return format_html('<a href="{}">#{}</a>', url, obj.pk)

    @admin.display(description="done")
    def progress(self, obj: WhatIfRun) -> str:
        return f"{obj.done:,} / {obj.total:,}"

    def get_urls(self) -> list[Any]:
        return [
            path("<int:run_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="policies_whatifrun_progress"),
            path("<int:run_id>/progress.json", self.admin_site.admin_view(self.progress_json),
                 name="policies_whatifrun_progress_json"),
            *super().get_urls(),
        ]  # fmt: skip

    def _run(self, request: HttpRequest, run_id: int) -> WhatIfRun:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(WhatIfRun.objects.defer("tenant_ids"), pk=run_id)

    def progress_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        run = self._run(request, run_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"What-if run #{run.pk}",
            "opts": self.model._meta,
            "run": run,
            "percent": 100 if not run.total else run.done * 100 // run.total,
            "refresh": None if run.finished else REFRESH_SECONDS,
        }
        return TemplateResponse(request, "admin/console/whatif_run.html", context)

    def progress_json(self, request: HttpRequest, run_id: int) -> JsonResponse:
        run = self._run(request, run_id)
        return JsonResponse({"status": run.status, "total": run.total, "done": run.done,
                             "changed": run.changed, "notified": run.notified,
                             "error": run.error})  # fmt: skip
