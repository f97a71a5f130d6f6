from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer portal: what a tenant's own people see and do, over the same services
    as the API and the staff console; no models of its own."""

    name = "portal"
    label = "portal"
    verbose_name = "Customer portal"
