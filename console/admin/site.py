"""The site's own setup: django-axes' login lockouts, whose one action declares its
permission like every other action of the console."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone


class AccessAttemptAdmin(AxesAccessAttemptAdmin):
    """django-axes' lockouts, with its one action declaring a permission like every other
    action of the console (axes declares none, so anyone who may see the list could run it)."""

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # axes measures the cool-off from the time of a login attempt, which only its login
        # handling sets on the request; without it the action fails with a 500 (axes 8.3).
        request.axes_attempt_time = timezone.now()  # type: ignore[attr-defined]
        super().cleanup_expired_attempts(request, queryset)


if admin.site.is_registered(AccessAttempt):  # unless AXES_ENABLE_ADMIN is off
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)
