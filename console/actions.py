"""One shape for the staff console's admin actions that ask for a reason (and perhaps more
fields) on an intermediate page, then call a service once per selected object.

The permission is declared with the action, as ``admin.action(permissions=…)`` does: the
admin offers and dispatches an action only to staff who hold it. A service that refuses
one object (``ServiceError``) becomes an error message naming that object; the others are
still done, and the page never answers with a 500."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from console.confirm import attempt, confirmation_page, confirmed, going_back
from console.outcomes import Notice, notifications_during, told_sentence, told_summary
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
    success_level: int = messages.SUCCESS,
    initial: Callable[[QuerySet[Any]], dict[str, Any]] | None = None,
    context: Callable[[], dict[str, Any]] | None = None,
    done: Callable[[Any, Any], str] | None = None,
) -> Callable[[ApplyOne], Callable[..., HttpResponse | None]]:
    """Turn ``apply_one(model_admin, request, obj, data)`` into an admin action named after
    it: a GET-like first call (or an invalid form) shows ``form_class`` on the intermediate
    page titled ``title``; a valid "apply" calls ``apply_one`` for each selected object.

    A form with ``consequences(results, notices)`` (``console.confirm``) is confirmed
    first whenever that names anything: the page says what the action does and shows the
    text each tenant receives; "Back" shows the form again as filled in.

    Each object done gets a message saying what happened — ``done(obj, result)``, else
    the form's ``summary(obj)``, else ``success`` formatted with ``count`` — and whom it
    told; past ``MESSAGES_PER_OBJECT`` objects, one message for all. A refusal
    (``ServiceError``) is an error message naming its object; the others are still done.
    ``initial`` prefills the form from the selection; ``context`` adds template context,
    read at each request."""

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
            if going_back(request) or not (applying and form.is_valid()):
                return action_page(
                    model_admin, request, queryset, form, title=title, action=name,
                    **(context() if context else {}),
                )  # fmt: skip
            objects = list(queryset)

            def apply_all() -> _Applied:
                applied = _Applied()
                for obj in objects:
                    try:
                        result, notices = notifications_during(
                            partial(apply_one, model_admin, request, obj, form.cleaned_data)
                        )
                    except ServiceError as exc:
                        applied.refused.append(f"{obj}: {exc.detail}")
                    else:
                        applied.done.append((obj, result, notices))
                return applied

            named = getattr(form, "consequences", None)

            def consequences(applied: _Applied, notices: list[Notice]) -> list[str]:
                if named is None or not applied.done:
                    return []
                lines = named([result for _, result, _ in applied.done], notices)
                return [*lines, *(f"Refused: {r}" for r in applied.refused)] if lines else []

            try:
                outcome = attempt(
                    apply_all, consequences=consequences, confirmed=confirmed(request)
                )
            except ServiceError as exc:  # raised outside any one object's call
                model_admin.message_user(request, exc.detail, messages.ERROR)
                return None
            if not outcome.done:
                changelist = reverse(
                    f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_changelist"
                )
                return confirmation_page(
                    model_admin, request, outcome, title=f"Confirm: {title}",
                    crumbs=[(str(model_admin.opts.verbose_name_plural).capitalize(), changelist)],
                )  # fmt: skip
            applied = outcome.result
            summary = getattr(form, "summary", None)

            def described(obj: Any, result: Any) -> str:
                if done is not None:
                    return done(obj, result)
                assert summary is not None
                return str(summary(obj))

            one_each = done is not None or summary is not None
            if one_each and len(applied.done) <= MESSAGES_PER_OBJECT:
                for obj, result, notices in applied.done:
                    told = told_sentence(notices, tenant=getattr(obj, "tenant", obj))
                    model_admin.message_user(
                        request, f"{described(obj, result)}; {told}.", success_level
                    )
            elif applied.done:
                everyone = [notice for _, _, notices in applied.done for notice in notices]
                headline = (success or f"{title}: {{count}} done").format(count=len(applied.done))
                model_admin.message_user(
                    request, f"{headline.rstrip('.')}; {told_summary(everyone)}.", success_level
                )
            for message in applied.refused:
                model_admin.message_user(request, message, messages.ERROR)
            return None

        action.__name__ = action.__qualname__ = name
        action.__doc__ = apply_one.__doc__
        action.form_class = form_class  # type: ignore[attr-defined]
        return admin.action(description=description, permissions=list(permissions))(action)

    return decorate


# More objects than this get one message for all instead of one each.
MESSAGES_PER_OBJECT = 10


@dataclass
class _Applied:
    """The objects an action was done to (with its result and notices) and refused."""

    done: list[tuple[Any, Any, list[Notice]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
