from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Notifications and their deliveries by e-mail, webhook and in-app (issue 4)."""

    name = "notifications"
    verbose_name = "Notifications"
