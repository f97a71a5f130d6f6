"""The staff start page's work queues (``console.queues``) for the admin's index."""

from __future__ import annotations

from typing import Any

from django import template

from console.queues import Queue, work_queues

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_work_queues(context: dict[str, Any]) -> list[Queue]:
    """The queues the signed-in staff member may see (``{% staff_work_queues as queues %}``)."""
    return work_queues(user=context["request"].user)
