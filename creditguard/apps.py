from django.apps import AppConfig


class CreditGuardConfig(AppConfig):
    """The kernel as an app: it holds what the whole system shares and no domain owns
    (the audit trail every app writes, the workers' heartbeat)."""

    name = "creditguard"
    verbose_name = "CreditGuard"
