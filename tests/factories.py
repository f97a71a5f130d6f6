from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import User

from tenants.models import Membership, Tenant
from tenants.services import tenant_create


class TenantFactory(factory.django.DjangoModelFactory[Tenant]):
    """Tenants made by the service, as in production: with version 1 of their rules."""

    class Meta:
        model = Tenant

    @classmethod
    def _create(cls, model_class: type[Tenant], *args: Any, **kwargs: Any) -> Tenant:
        return tenant_create(**kwargs)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    industry = Tenant.Industry.RETAIL
    size_band = Tenant.SizeBand.MEDIUM
    language = Tenant.Language.ENGLISH
    time_zone = "Europe/Berlin"
    contact_email = factory.LazyAttribute(lambda t: f"ops@{t.slug}.example")


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.ADMIN
