from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from creditguard import views
from metering import apis as metering_apis

api_v1 = [
    path("usage-events", metering_apis.UsageEventsApi.as_view(), name="usage-events"),
    path("balances", metering_apis.BalancesApi.as_view(), name="balances"),
    path("usage", metering_apis.UsageApi.as_view(), name="usage"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="api-docs",
    ),
]
