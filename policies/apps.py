from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PoliciesConfig(AppConfig):
    """Limit rules, restrictions, fees, overage decisions and top-ups; the staff roles."""

    name = "policies"
    verbose_name = "Fair-use policies"

    def ready(self) -> None:
        # Imported here, not at the top: models may be imported only once the app
        # registry is ready (Django's rule for AppConfig.ready).
        from metering.hooks import rules_reader_register
        from metering.models import Channel
        from notifications.hooks import channel_labels_reader_register
        from policies import selectors
        from policies.receivers import (
            tenant_created_rules,
            tenant_created_welcome,
            tenant_reopened_status,
        )
        from policies.roles import roles_sync
        from tenants.services import tenant_created, tenant_reopened

        # After every app's migrations, not only policies': each app's permissions are
        # created by its own post_migrate, so on a fresh database those of the apps after
        # policies (notifications: webhook endpoints, deliveries) would miss the groups.
        post_migrate.connect(roles_sync, dispatch_uid="policies.roles_sync")
        # Metering opens balances and shows them under the rules in force through this
        # reader, without importing policies.
        rules_reader_register(selectors)
        # Notifications name a channel in the tenant's language, without importing metering.
        channel_labels_reader_register(Channel.labels_by_code)
        tenant_created.connect(tenant_created_rules, dispatch_uid="policies.tenant_created")
        # After the rules (receivers run in the order connected): the welcome names them.
        tenant_created.connect(tenant_created_welcome, dispatch_uid="policies.tenant_welcome")
        tenant_reopened.connect(tenant_reopened_status, dispatch_uid="policies.tenant_reopened")
