"""Row-level multi-tenancy: the one mechanism that scopes tenant-owned rows.

Every tenant-owned model uses :class:`TenantScopedManager`; code serving a request
reads through ``Model.objects.for_tenant(tenant)`` so that a foreign row is simply
not found (the API answers 404 for missing and foreign alike).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from django.db import models

if TYPE_CHECKING:
    from tenants.models import Tenant

_M = TypeVar("_M", bound=models.Model)


class TenantScopedQuerySet(models.QuerySet[_M]):
    def for_tenant(self, tenant: Tenant) -> TenantScopedQuerySet[_M]:
        if tenant is None or tenant.pk is None:
            raise ValueError("for_tenant() needs a saved tenant")
        return self.filter(tenant=tenant)


class TenantScopedManager(models.Manager[_M]):
    def get_queryset(self) -> TenantScopedQuerySet[_M]:
        return TenantScopedQuerySet(self.model, using=self._db)

    def for_tenant(self, tenant: Tenant) -> TenantScopedQuerySet[_M]:
        return self.get_queryset().for_tenant(tenant)
