from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PoliciesConfig(AppConfig):
    """Limit rules, restrictions, fees, overage decisions and top-ups; the staff roles."""

    name = "policies"
    verbose_name = "Fair-use policies"

    def ready(self) -> None:
        from policies.receivers import api_key_revoked_audit
        from policies.roles import roles_sync
        from tenants.services import api_key_revoked

        post_migrate.connect(roles_sync, sender=self)
        api_key_revoked.connect(api_key_revoked_audit, dispatch_uid="policies.api_key_revoked")
