from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing import apis as billing_apis
from creditguard import views
from metering import apis as metering_apis
from notifications import apis as notifications_apis
from policies import apis as policies_apis
from policies import balances_api
from tenants import apis as tenants_apis

# Public ids in paths are matched by the ``uuid`` converter: a view gets a UUID, and
# anything else is not routed (a 404 problem, as for an unknown id).
api_v1 = [
    path("key", tenants_apis.ApiKeyApi.as_view(), name="api-key"),
    path("usage-events", metering_apis.UsageEventsApi.as_view(), name="usage-events"),
    path("balances", balances_api.BalancesApi.as_view(), name="balances"),
    path("usage", metering_apis.UsageApi.as_view(), name="usage"),
    path("authorizations", policies_apis.AuthorizationsApi.as_view(), name="authorizations"),
    path(
        "authorizations/<uuid:authorization_id>",
        policies_apis.AuthorizationApi.as_view(),
        name="authorization",
    ),
    path(
        "authorizations/<uuid:authorization_id>/commit",
        policies_apis.AuthorizationCommitApi.as_view(),
        name="authorization-commit",
    ),
    path(
        "authorizations/<uuid:authorization_id>/release",
        policies_apis.AuthorizationReleaseApi.as_view(),
        name="authorization-release",
    ),
    path("notifications", notifications_apis.NotificationsApi.as_view(), name="notifications"),
    path(
        "webhook-endpoints",
        notifications_apis.WebhookEndpointsApi.as_view(),
        name="webhook-endpoints",
    ),
    path(
        "webhook-endpoints/<uuid:endpoint_id>",
        notifications_apis.WebhookEndpointApi.as_view(),
        name="webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<uuid:endpoint_id>/rotate-secret",
        notifications_apis.WebhookEndpointRotateApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path("billing/export", billing_apis.BillingExportApi.as_view(), name="billing-export"),
    path(
        "billing/line-items", billing_apis.BillingLineItemsApi.as_view(), name="billing-line-items"
    ),
    path("topup-offers", policies_apis.TopUpOffersApi.as_view(), name="topup-offers"),
    path("policy", policies_apis.PolicyApi.as_view(), name="policy"),
    path(
        "policy/acknowledge",
        policies_apis.PolicyAcknowledgeApi.as_view(),
        name="policy-acknowledge",
    ),
    path(
        "topup-offers/<uuid:offer_id>/accept",
        policies_apis.TopUpOfferAcceptApi.as_view(),
        name="topup-offer-accept",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # The customer portal (login, dashboard, …) and its language switch.
    path("", include("portal.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
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
