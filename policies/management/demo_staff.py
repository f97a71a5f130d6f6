"""The demo's staff logins: one per role of the console (``policies.roles``), beside the
superuser ``staff``, so that each role can be tried — Support restricts and works anomaly
alerts, Billing decides overage charges and edits fees, Administrators change limits."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from policies.roles import ADMINISTRATORS, roles_sync

# username, the role's group
STAFF_ROLE_LOGINS = [
    ("support", "Support"),
    ("billing", "Billing"),
    ("administrator", ADMINISTRATORS),
]


def staff_role_users(*, password: str) -> list[tuple[User, str]]:
    """A staff member in each role's group, and in no other, with ``password`` (created
    once; a second run resets the password and the group)."""
    roles_sync()  # the groups exist after migrate; made sure of, in case
    users: list[tuple[User, str]] = []
    for username, role in STAFF_ROLE_LOGINS:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@creditguard.example"}
        )
        user.is_staff, user.is_superuser = True, False
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        users.append((user, role))
    return users
