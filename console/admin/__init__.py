"""The staff console's admin, one module per area; importing this package (Django's admin
autodiscovery does) registers them all."""

from console.admin import (
    anomalies,
    api_keys,
    audit,
    channels,
    fees,
    ledger,
    limit_requests,
    limits,
    offers,
    overage,
    policy_versions,
    recommendations,
    site,
    tenants,
    webhooks,
    whatif,
    whatif_runs,
)

__all__ = [
    "anomalies",
    "api_keys",
    "audit",
    "channels",
    "fees",
    "ledger",
    "limit_requests",
    "limits",
    "offers",
    "overage",
    "policy_versions",
    "recommendations",
    "site",
    "tenants",
    "webhooks",
    "whatif",
    "whatif_runs",
]
