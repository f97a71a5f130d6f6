"""One shape for the staff console's admin actions that ask for a reason (and perhaps more
fields) on an intermediate page, then call a service once per selected object.

The permission is declared with the action, as ``admin.action(permissions=…)`` does: the
admin offers and dispatches an action only to staff who hold it. A service that refuses
one object (``ServiceError``) becomes an error message naming that object; the others are
still done, and the page never answers with a 500."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from creditguard.errors import ServiceError

# (model admin, request, one selected object, the form's cleaned data) -> anything
ApplyOne = Callable[[Any, HttpRequest, Any, dict[str, Any]], object]


def action_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    form: forms.Form,
    *,
    title: str,
    action: str,
    **extra: Any,
) -> TemplateResponse:
    """The intermediate page of an admin action that needs a form (a reason, a pack)."""
    return TemplateResponse(
        request,
        "admin/console/action_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "form": form,
            "objects": queryset,
            "action": action,
            "opts": model_admin.model._meta,
            **extra,
        },
    )


def form_action(
    *,
    form_class: type[forms.Form],
    title: str,
    description: str,
    permissions: Sequence[str],
    success: str | None = None,
    success_level: int = messages.INFO,
    initial: Callable[[QuerySet[Any]], dict[str, Any]] | None = None,
    context: Callable[[], dict[str, Any]] | None = None,
) -> Callable[[ApplyOne], Callable[..., HttpResponse | None]]:
    """Turn ``apply_one(model_admin, request, obj, data)`` into an admin action named after
    it: a GET-like first call (or an invalid form) shows ``form_class`` on the intermediate
    page titled ``title``; a valid "apply" calls ``apply_one`` for each selected object.

    ``success`` is formatted with ``count`` (objects done) and shown when at least one was
    done; refusals follow it, one message per object. ``initial`` prefills the form from the
    selection; ``context`` adds template context, read at each request."""

    def decorate(apply_one: ApplyOne) -> Callable[..., HttpResponse | None]:
        name = apply_one.__name__

        def action(
            model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
        ) -> HttpResponse | None:
            applying = "apply" in request.POST
            form = form_class(
                request.POST if applying else None,
                initial=initial(queryset) if initial else None,
            )
            if not (applying and form.is_valid()):
                return action_page(
                    model_admin,
                    request,
                    queryset,
                    form,
                    title=title,
                    action=name,
                    **(context() if context else {}),
                )
            done, refused = 0, []
            for obj in queryset:
                try:
                    apply_one(model_admin, request, obj, form.cleaned_data)
                    done += 1
                except ServiceError as exc:
                    refused.append(f"{obj}: {exc.detail}")
            if done and success:
                model_admin.message_user(request, success.format(count=done), success_level)
            for message in refused:
                model_admin.message_user(request, message, messages.ERROR)
            return None

        action.__name__ = action.__qualname__ = name
        action.__doc__ = apply_one.__doc__
        action.form_class = form_class  # type: ignore[attr-defined]
        return admin.action(description=description, permissions=list(permissions))(action)

    return decorate
