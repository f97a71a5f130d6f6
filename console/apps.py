from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The staff console (the Django admin over every app); no models of its own."""

    name = "console"
    label = "console"
    verbose_name = "Staff console"
