"""The schema's readiness to be sharded by tenant with Citus (docs/SCALING.md, "Citus"),
held by introspecting the models, so that it does not drift further.

Every model is placed: distributed by ``tenant_id`` (its rows are one tenant's and
co-located with the tenant's other rows), a reference table (small, read everywhere,
copied to every node), or local to the coordinator (not sharded). Citus then refuses:

* a unique constraint or primary key of a distributed table without the distribution
  column — every unique constraint of a distributed model must name ``tenant``, except
  those listed below with the reason they do not yet;
* a foreign key between distributed tables that does not include the distribution column
  — Django's are one column, so each such key is listed (it becomes ``(tenant_id, x_id)``
  referencing a ``(tenant_id, id)`` key); a new one must be added here knowingly;
* a foreign key from a reference or local table to a distributed one, and from a
  distributed table to a local one.

Primary keys are ``id`` alone everywhere; docs/SCALING.md says why they stay so for now.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.apps import apps
from django.db import models
from django.db.models.expressions import F

# --- where each table goes ---------------------------------------------------------------

# Small, rarely written, read by every tenant's queries or before the tenant is known.
REFERENCE = {
    "tenants.Tenant",  # read by cross-tenant staff queries; tenant_id's own table
    "tenants.ApiKey",  # authentication finds the tenant from the key's prefix
    "tenants.Invitation",  # accepted by a token before the tenant is known
    "metering.Channel",
    "policies.FeeSchedule",  # platform-wide schedules have no tenant
    "policies.FeeTier",
    "policies.CohortDefault",
    "policies.PolicyVersion",
    "policies.TopUpPack",
    "notifications.WebhookEndpoint",  # platform endpoints have no tenant
    "auth.User",  # staff and customers; memberships say whose
    "auth.Group",
    "auth.Permission",
    "contenttypes.ContentType",
}

# On the coordinator only: staff-side records and framework tables, not per tenant.
LOCAL = {
    "creditguard.WorkerHeartbeat",
    "creditguard.AuditEntry",  # platform actions have no tenant; read across tenants
    "policies.WhatIfRun",  # a staff run over a cohort of tenants
    "admin.LogEntry",
    "sessions.Session",
    "axes.AccessAttempt",
    "axes.AccessAttemptExpiration",
    "axes.AccessFailureLog",
    "axes.AccessLog",
}

# Every other model is one tenant's: distributed by tenant_id.

# Distributed models without a tenant column yet: they belong to a tenant through their
# parent row, and need tenant_id copied in (a column, its backfill and the writers).
NO_TENANT_COLUMN_YET = {
    "notifications.NotificationRead": "a user's read mark of a tenant's notification",
    "notifications.Delivery": "one send of a tenant's notification or platform event",
}

# Unique constraints of distributed models that do not name tenant yet, each with why.
GLOBAL_PUBLIC_ID = (
    "a random UUID handed out to clients: unique on its own by construction; every lookup "
    "names the tenant too, so it can become (tenant_id, public_id)"
)
UNIQUE_WITHOUT_TENANT = {
    ("metering.Authorization", "public_id"): GLOBAL_PUBLIC_ID,
    ("policies.TopUpOffer", "public_id"): GLOBAL_PUBLIC_ID,
    ("notifications.Notification", "public_id"): GLOBAL_PUBLIC_ID,
    ("notifications.Notification", "dedupe_key"): (
        "each key names a tenant's own row (a balance, a charge, a restriction …); "
        "(tenant_id, dedupe_key) is the same rule once the evaluation's lookup of "
        "existing keys names the tenants too"
    ),
    ("notifications.PlatformEvent", "event_id"): (
        "a hash of the event's type and fact, sent as webhook-id: (tenant_id, event_id) "
        "once the service that finds an event again names its tenant"
    ),
    ("policies.TopUp", "offer"): (
        "a one-to-one field (one top-up per offer): becomes a foreign key with "
        "unique (tenant, offer), changing the reverse accessor's callers"
    ),
    ("policies.TopUp", "grant"): "a one-to-one field (one top-up per grant), as offer",
    ("notifications.NotificationRead", "user,notification"): "no tenant column yet",
    ("notifications.Delivery", "notification,event,transport,endpoint"): "no tenant column yet",
}

# Foreign keys between distributed tables: each becomes (tenant_id, x_id) referencing a
# unique (tenant_id, id) of its target — Django has no composite foreign key, so in SQL.
COLOCATED_FOREIGN_KEYS = {
    ("metering.UsageEvent", "period"),
    ("metering.UsageEventKey", "period"),
    ("metering.Balance", "period"),
    ("metering.Grant", "balance"),
    ("metering.LedgerEntry", "balance"),
    ("metering.LedgerEntry", "grant"),
    ("metering.LedgerEntry", "authorization"),
    ("metering.Authorization", "balance"),
    ("policies.AnomalyAlert", "restriction"),
    ("policies.OverageCharge", "period"),
    ("policies.LimitRequest", "rule"),
    ("policies.TopUpOffer", "balance"),
    ("policies.TopUp", "period"),
    ("policies.TopUp", "offer"),
    ("policies.TopUp", "grant"),
    ("notifications.NotificationRead", "notification"),
    ("notifications.Delivery", "notification"),
    ("notifications.Delivery", "event"),
}


def placement(model: type[models.Model]) -> str:
    label = model._meta.label
    if label in REFERENCE:
        return "reference"
    if label in LOCAL:
        return "local"
    return "distributed"


def distributed() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if placement(m) == "distributed"]


def unique_sets(model: type[models.Model]) -> Iterator[tuple[str, bool]]:
    """Each unique constraint of the model: its columns as text, and whether it names the
    tenant."""
    meta = model._meta
    for field in meta.concrete_fields:
        if field.unique and not field.primary_key:
            yield field.name, field.name == "tenant"
    for together in meta.unique_together:
        yield ",".join(together), "tenant" in together
    for constraint in meta.constraints:
        if not isinstance(constraint, models.UniqueConstraint):
            continue
        if constraint.fields:
            yield ",".join(constraint.fields), "tenant" in constraint.fields
        else:
            names = [
                ref.name for expression in constraint.expressions for ref in _references(expression)
            ]
            yield ",".join(names), "tenant" in names


def _references(expression: object) -> Iterator[F]:
    if isinstance(expression, F):
        yield expression
    for source in getattr(expression, "get_source_expressions", list)():
        yield from _references(source)


def test_the_framework_and_reference_lists_name_existing_models():
    labels = {m._meta.label for m in apps.get_models()}
    assert REFERENCE - labels == set()
    assert LOCAL - labels == set()


def test_every_distributed_model_has_a_tenant_column_that_is_never_null():
    missing = {}
    for model in distributed():
        fields = {f.name: f for f in model._meta.concrete_fields}
        tenant = fields.get("tenant")
        if tenant is None:
            missing[model._meta.label] = "no tenant column"
        elif tenant.null:
            # Citus refuses a row without its distribution column.
            missing[model._meta.label] = "tenant may be null"
    assert missing == {label: "no tenant column" for label in NO_TENANT_COLUMN_YET}


def test_every_unique_constraint_of_a_distributed_model_names_the_tenant():
    without = {
        (model._meta.label, columns)
        for model in distributed()
        for columns, names_tenant in unique_sets(model)
        if not names_tenant
    }
    unexplained = without - UNIQUE_WITHOUT_TENANT.keys()
    assert unexplained == set(), "add tenant to these, or say here why not yet"
    # One made to name the tenant leaves the list too.
    assert UNIQUE_WITHOUT_TENANT.keys() - without == set()


def test_no_foreign_key_citus_refuses_beyond_the_known_colocated_ones():
    refused = set()
    colocated = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not field.is_relation or field.related_model is None:
                continue
            source = placement(model)
            target = placement(field.related_model)  # type: ignore[arg-type]
            key = (model._meta.label, field.name)
            if source == target == "distributed":
                colocated.add(key)
            elif (source, target) in {
                ("reference", "distributed"),
                ("reference", "local"),
                ("local", "distributed"),
                ("distributed", "local"),
            }:
                refused.add((*key, source, target))
    assert refused == set()
    assert colocated - COLOCATED_FOREIGN_KEYS == set(), "a new key between tenants' tables"
