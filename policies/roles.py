"""Staff roles as Django groups, kept in step with the code after every migrate, and the
role matrix: the permission each action and custom view of the staff console requires.

* Support: sees everything; restricts, lifts, sends top-up offers and works anomaly alerts.
* Billing: sees everything; decides overage charges and edits fee schedules.
* Administrators: every permission of CreditGuard's apps (limits, limit requests,
  recommendations, policy versions and API keys included).

docs/ROLES.md is this module in words (``tests/admin/test_roles.py`` keeps the two equal)
and the same test walks every action and custom URL of the admin and holds it to
``CONSOLE``: an action or view missing from it, or that lets in a role this says it must
not, fails.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.contrib.auth.models import Group, Permission

APPS = ["creditguard", "tenants", "metering", "policies", "notifications"]

ROLES: dict[str, list[str]] = {
    "Support": [
        "policies.add_restriction",
        "policies.change_restriction",
        "policies.add_topupoffer",
        "policies.change_anomalyalert",
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
ADMINISTRATORS = "Administrators"


def _permissions(role: str) -> list[Permission]:
    """What a role holds: every permission of CreditGuard's apps for Administrators;
    otherwise every view permission and the role's own in ``ROLES``."""
    ours = Permission.objects.filter(content_type__app_label__in=APPS)
    if role == ADMINISTRATORS:
        return list(ours)
    found = list(ours.filter(codename__startswith="view_"))
    for code in ROLES[role]:
        app_label, codename = code.split(".")
        found.extend(
            Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )
    return found


def roles_sync(**kwargs: Any) -> None:
    """Create or update the groups (a post_migrate handler; safe to run any number of times)."""
    for name in [*ROLES, ADMINISTRATORS]:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_permissions(name))


class ConsoleEntry(NamedTuple):
    what: str  # in the words of the console
    permission: str  # "<app_label>.<codename>"


# Keys: "<app_label>.<model_name>:<action>" for admin actions, the URL name for custom
# admin views. Django's own "delete_selected" needs the model's delete permission
# (``console_permission``), so it is not listed.
CONSOLE: dict[str, ConsoleEntry] = {
    "tenants.tenant:restrict_bulk": ConsoleEntry(
        "Tenants: restrict or suspend (bulk action)", "policies.add_restriction"
    ),
    "policies_tenant_restrict": ConsoleEntry(
        "Tenant page: restrict or suspend", "policies.add_restriction"
    ),
    "policies.restriction:lift": ConsoleEntry("Restrictions: lift", "policies.change_restriction"),
    "policies_anomalyalert_confirm": ConsoleEntry(
        "Anomaly alerts: confirm (keep or apply a throttle)", "policies.change_anomalyalert"
    ),
    "policies_anomalyalert_extend": ConsoleEntry(
        "Anomaly alerts: extend the throttle", "policies.change_anomalyalert"
    ),
    "policies_anomalyalert_lift": ConsoleEntry(
        "Anomaly alerts: lift (and the throttle)", "policies.change_anomalyalert"
    ),
    "tenants.tenant:send_offer": ConsoleEntry(
        "Tenants: send a top-up offer", "policies.add_topupoffer"
    ),
    "policies.overagecharge:decide": ConsoleEntry(
        "Overage charges: decide (bill / waive)", "policies.change_overagecharge"
    ),
    "policies.feeschedule:notify": ConsoleEntry(
        "Fee schedules: notify the tenants concerned", "policies.change_feeschedule"
    ),
    "policies_tenant_limit": ConsoleEntry("Tenant page: change a limit", "policies.add_limitrule"),
    "policies_tenant_reduce": ConsoleEntry("Tenant page: reduce credits", "policies.add_limitrule"),
    "policies.limitrecommendation:apply": ConsoleEntry(
        "Limit recommendations: apply", "policies.add_limitrule"
    ),
    "policies_limitrule_whatif": ConsoleEntry(
        "Limit rules: what-if (preview a limit or fee schedule for a tenant or a cohort)",
        "policies.view_limitrule",
    ),
    "policies_limitrule_whatif_apply": ConsoleEntry(
        "Limit rules: apply a what-if (with a fee schedule, also policies.add_feeschedule)",
        "policies.add_limitrule",
    ),
    "policies_whatifrun_progress": ConsoleEntry(
        "What-if runs: a run's progress (done / total, changed, notified)",
        "policies.view_whatifrun",
    ),
    "policies_whatifrun_progress_json": ConsoleEntry(
        "What-if runs: a run's progress as JSON", "policies.view_whatifrun"
    ),
    "policies_whatifrun_resume": ConsoleEntry(
        "What-if runs: resume a failed run (with a fee schedule, also policies.add_feeschedule)",
        "policies.add_limitrule",
    ),
    "policies_limitrequest_review": ConsoleEntry(
        "Limit requests: review (usage, terms, recommendation, cohort)",
        "policies.view_limitrequest",
    ),
    "policies_limitrequest_approve": ConsoleEntry(
        "Limit requests: approve (a new limit rule version)", "policies.add_limitrule"
    ),
    "policies_limitrequest_decline": ConsoleEntry(
        "Limit requests: decline with a reason for the customer", "policies.change_limitrequest"
    ),
    "tenants.tenant:compute_recommendations": ConsoleEntry(
        "Tenants: compute limit recommendations", "policies.add_limitrecommendation"
    ),
    "policies.policyversion:publish": ConsoleEntry(
        "Policy versions: publish (notifies every tenant)", "policies.change_policyversion"
    ),
    "tenants.tenant:close": ConsoleEntry(
        "Tenants: close (revokes their API keys)", "tenants.change_tenant"
    ),
    "tenants.tenant:reopen": ConsoleEntry(
        "Tenants: reopen a closed tenant", "tenants.change_tenant"
    ),
    "tenants.apikey:revoke": ConsoleEntry("API keys: revoke", "tenants.change_apikey"),
    "auth_user_password_change": ConsoleEntry(
        "Users: change a password (superusers only)", "auth.change_user"
    ),
    "axes.accessattempt:cleanup_expired_attempts": ConsoleEntry(
        "Access attempts: clean up expired ones (superusers only)", "axes.delete_accessattempt"
    ),
}


def console_permission(app_label: str, model_name: str, name: str) -> str | None:
    """The permission an admin action or custom admin view requires, or None when the
    matrix does not know it (which ``tests/admin/test_roles.py`` turns into a failure)."""
    if name == "delete_selected":
        return f"{app_label}.delete_{model_name}"
    entry = CONSOLE.get(f"{app_label}.{model_name}:{name}") or CONSOLE.get(name)
    return entry.permission if entry else None
