from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PoliciesConfig(AppConfig):
    """Limit rules, restrictions, fees, overage decisions and top-ups; the staff roles."""

    name = "policies"
    verbose_name = "Fair-use policies"

    def ready(self) -> None:
        from policies.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self)
