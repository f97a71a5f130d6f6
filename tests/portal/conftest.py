"""Portal fixtures: a tenant with an owner, an admin and a viewer, a person who belongs to
two tenants, a staff account that belongs to none, and another tenant (beta) whose things
alpha's people must never see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "portal-password-1"  # noqa: S105
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass
class People:
    alpha: Tenant
    beta: Tenant
    owner: User
    admin: User
    viewer: User
    both: User  # admin of alpha, viewer of beta
    beta_owner: User
    staff: User  # staff, member of nothing

    def client(self, user: User, **kwargs: Any) -> Client:
        client = Client(**kwargs)
        client.force_login(user, backend=MODEL_BACKEND)
        return client


def _member(tenant: Tenant, username: str, role: str) -> User:
    user = UserFactory.create(username=username)
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory.create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def people(db, settings) -> People:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alpha = TenantFactory.create(slug="alpha", name="Alpha GmbH", language="en", time_zone="UTC")
    beta = TenantFactory.create(slug="beta", name="Beta AG", language="de", time_zone="UTC")
    both = _member(alpha, "both", Membership.Role.ADMIN)
    MembershipFactory.create(tenant=beta, user=both, role=Membership.Role.VIEWER)
    staff = User.objects.create_superuser("sam", "sam@creditguard.example", PASSWORD)
    return People(
        alpha=alpha,
        beta=beta,
        owner=_member(alpha, "olga", Membership.Role.OWNER),
        admin=_member(alpha, "adam", Membership.Role.ADMIN),
        viewer=_member(alpha, "vera", Membership.Role.VIEWER),
        both=both,
        beta_owner=_member(beta, "bert", Membership.Role.OWNER),
        staff=staff,
    )
