"""Staff roles as Django groups, kept in step with the code after every migrate.

* Support: sees everything; restricts, lifts and sends top-up offers.
* Billing: sees everything; decides overage charges and edits fee schedules.
* Administrators: every permission of CreditGuard's apps (limits included).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

APPS = ["tenants", "metering", "policies", "notifications"]

ROLES: dict[str, list[str]] = {
    "Support": [
        "policies.add_restriction",
        "policies.change_restriction",
        "policies.add_topupoffer",
    ],
    "Billing": [
        "policies.change_overagecharge",
        "policies.add_feeschedule",
        "policies.change_feeschedule",
        "policies.add_feetier",
        "policies.change_feetier",
        "policies.delete_feetier",
    ],
}


def _permissions(codes: list[str]) -> list[Permission]:
    found: list[Permission] = []
    for code in codes:
        app_label, codename = code.split(".")
        found.extend(
            Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )
    return found


def roles_sync(**kwargs: Any) -> None:
    """Create or update the groups (a post_migrate handler; safe to run any number of times)."""
    views = list(
        Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_")
    )
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(views + _permissions(codes))
    admins, _ = Group.objects.get_or_create(name="Administrators")
    admins.permissions.set(Permission.objects.filter(content_type__app_label__in=APPS))
