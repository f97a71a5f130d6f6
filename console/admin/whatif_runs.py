"""What-if runs (issue 13): a what-if applied to more than ``WHATIF_BACKGROUND_THRESHOLD``
tenants runs as a worker task (``policies.services.whatif_runs``); its page shows the
progress (done of total, changed, notified, status) and refreshes itself until the run
ends, then says what it did. The list of runs is read-only and linked from the what-if
page; every role sees it (``policies.view_whatifrun``), starting one is applying a
what-if (``console.admin.whatif``). A failed run's page offers who may apply it to resume
it at its first tenant not done, with a reason for the audit trail."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from console.admin.common import staff_user
from console.admin.whatif import APPLY_PERMISSION, FEE_PERMISSION
from console.forms import internal_reason_field
from creditguard.errors import ServiceError
from policies.models import WhatIfRun
from policies.services.whatif_runs import whatif_run_resume

REFRESH_SECONDS = 2


class ResumeForm(forms.Form):
    reason = internal_reason_field()


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
            path("<int:run_id>/resume/", self.admin_site.admin_view(self.resume_view),
                 name="policies_whatifrun_resume"),
            path("<int:run_id>/progress.json", self.admin_site.admin_view(self.progress_json),
                 name="policies_whatifrun_progress_json"),
            *super().get_urls(),
        ]  # fmt: skip

    def _run(self, request: HttpRequest, run_id: int) -> WhatIfRun:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(WhatIfRun.objects.defer("tenant_ids"), pk=run_id)

    def may_resume(self, request: HttpRequest, run: WhatIfRun) -> bool:
        """Who may apply the run's proposal: its terms, and its fee schedule if any."""
        user = request.user
        return user.has_perm(APPLY_PERMISSION) and (
            not run.schedule or user.has_perm(FEE_PERMISSION)
        )

    def progress_view(
        self, request: HttpRequest, run_id: int, form: ResumeForm | None = None, status: int = 200
    ) -> HttpResponse:
        run = self._run(request, run_id)
        resumable = run.status == WhatIfRun.Status.FAILED and self.may_resume(request, run)
        context = {
            **self.admin_site.each_context(request),
            "title": f"What-if run #{run.pk}",
            "opts": self.model._meta,
            "run": run,
            "percent": 100 if not run.total else run.done * 100 // run.total,
            "refresh": None if run.finished else REFRESH_SECONDS,
            "resume_form": (form or ResumeForm()) if resumable else None,
        }
        return TemplateResponse(request, "admin/console/whatif_run.html", context, status=status)

    def resume_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        run = self._run(request, run_id)
        if not self.may_resume(request, run):
            raise PermissionDenied
        if request.method != "POST":  # the run's page, with the form if it can be resumed
            return self.progress_view(request, run_id)
        page = reverse("admin:policies_whatifrun_progress", args=[run.pk])
        form = ResumeForm(request.POST)
        if not form.is_valid():
            return self.progress_view(request, run_id, form, status=400)
        try:
            whatif_run_resume(run_id=run.pk, reason=form.cleaned_data["reason"],
                              actor=staff_user(request))  # fmt: skip
        except ServiceError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(page)
        self.message_user(
            request,
            f"What-if run #{run.pk} resumed at tenant {run.done + 1:,} of {run.total:,}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(page)

    def progress_json(self, request: HttpRequest, run_id: int) -> JsonResponse:
        run = self._run(request, run_id)
        return JsonResponse({"status": run.status, "total": run.total, "done": run.done,
                             "changed": run.changed, "notified": run.notified,
                             "error": run.error})  # fmt: skip
