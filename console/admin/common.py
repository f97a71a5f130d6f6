"""What every page of the console shares: the signed-in staff member, read-only inlines,
and admins whose saves and deletes go through a service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from console.formats import staff_instant


def staff_user(request: HttpRequest) -> User:
    """The signed-in staff member (the admin lets no one else in)."""
    assert isinstance(request.user, User)
    return request.user


def short_instant(value: datetime | None) -> str:
    """An instant in a list's column: the console's one format (``console.formats``)."""
    return staff_instant(value)


def adopt(obj: Any, saved: Any) -> None:
    """Make the admin's instance the one a service saved, so the admin carries on with it
    (its inlines, its log entry, its redirect)."""
    for model_field in saved._meta.concrete_fields:
        setattr(obj, model_field.attname, getattr(saved, model_field.attname))
    obj._state.adding, obj._state.db = False, saved._state.db


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False
    # What each row's label and columns read (a row shows its object's ``__str__``).
    related: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.related) if self.related else queryset

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceSavedAdmin(admin.ModelAdmin):
    """A setting saved and deleted by its service (validated, audited), never by the admin."""

    def save_with_service(self, obj: Any, actor: User) -> None:
        raise NotImplementedError

    def delete_with_service(self, obj: Any, actor: User) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.save_with_service(obj, staff_user(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_with_service(obj, staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_with_service(obj, staff_user(request))


class ReadOnlyAdmin(admin.ModelAdmin):
    """History changed only by services (the ledger, periods, usage): shown, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
