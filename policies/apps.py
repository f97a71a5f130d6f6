from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    """Limit rules, restrictions, fees, overage decisions and policy versions (issue 3)."""

    name = "policies"
    verbose_name = "Fair-use policies"
