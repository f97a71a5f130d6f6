"""Destructive or customer-visible staff actions are confirmed on a page that names what
they do and shows the text each tenant will receive.

``attempt`` runs the action — the same service call the confirmed action makes — in a
transaction, and asks ``consequences`` what it did. When that names anything and the
request does not confirm it yet, the transaction is rolled back: nothing of it stays,
the deliveries it planned are dropped with it (Django runs no ``on_commit`` callback of
a rolled-back block), and the confirmation page shows what it would have done, in the
service's own words and the delivery's own rendering. Confirmed (the page posts the form
again with ``confirmed``), it runs once more and is kept. An action that names nothing
is kept at the first run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse

from console.outcomes import Notice, notifications_during

T = TypeVar("T")

# What a confirmation page posts back, beside the form's own fields.
CONFIRMED, BACK = "confirmed", "back"


@dataclass
class Outcome(Generic[T]):
    """What an attempted action did (``done``) or would do once confirmed."""

    result: T
    notices: list[Notice]
    consequences: list[str] = field(default_factory=list)
    done: bool = True


class _Unconfirmed(Exception):
    def __init__(self, outcome: Outcome[Any]) -> None:
        super().__init__("awaiting confirmation")
        self.outcome = outcome


def confirmed(request: HttpRequest) -> bool:
    return CONFIRMED in request.POST


def going_back(request: HttpRequest) -> bool:
    """The confirmation page's "Back": show the form again as it was filled in."""
    return BACK in request.POST


def attempt(
    action: Callable[[], T],
    *,
    consequences: Callable[[T, list[Notice]], list[str]],
    confirmed: bool,
) -> Outcome[T]:
    """Run ``action``; keep it unless ``consequences`` names what it does and it is not
    ``confirmed`` yet, then roll it back and return what it would do (``done`` False).
    A service's refusal (``ServiceError``) propagates, nothing kept."""
    try:
        with transaction.atomic():
            result, notices = notifications_during(action)
            named = consequences(result, notices)
            if named and not confirmed:
                raise _Unconfirmed(Outcome(result, notices, named, done=False))
    except _Unconfirmed as unconfirmed:
        return unconfirmed.outcome
    return Outcome(result, notices, named, done=True)


def posted(request: HttpRequest) -> list[tuple[str, str]]:
    """The form as it was posted, for the confirmation page to post again."""
    skip = {"csrfmiddlewaretoken", CONFIRMED, BACK}
    return [(name, value) for name in request.POST if name not in skip
            for value in request.POST.getlist(name)]  # fmt: skip


def confirmation_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    outcome: Outcome[Any],
    *,
    title: str,
    crumbs: Sequence[tuple[str, str]] = (),
    confirm_label: str = "Confirm",
) -> TemplateResponse:
    """The page naming ``outcome``'s consequences and the customers' texts, with Confirm
    (posts the form again, confirmed) and Back (shows the form again, filled in)."""
    return TemplateResponse(
        request,
        "admin/console/confirm.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": model_admin.model._meta,
            "crumbs": crumbs,
            "consequences": outcome.consequences,
            "notices": outcome.notices,
            "posted": posted(request),
            "confirm_label": confirm_label,
        },
    )
