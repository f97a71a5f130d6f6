"""The staff console: the Django admin as the face over every app. It holds no models and
no state of its own; every change it makes calls the service of that change."""
