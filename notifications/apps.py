from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Notifications and their deliveries by e-mail, webhook and in-app."""

    name = "notifications"
    verbose_name = "Notifications"
