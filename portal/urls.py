"""The portal's URLs (namespace ``portal``), mounted at the site's root."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import path

from portal.views import (
    account,
    alerts,
    credits,
    developers,
    limit_requests,
    notifications,
    overview,
    policy,
    team,
    usage,
)

app_name = "portal"


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which browsers ask for whatever the page says: the portal's icon
    (the pages link it as ``<link rel=icon>``), rather than a 404 on every page."""
    return redirect(static("portal/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("login/", account.LoginView.as_view(), name="login"),
    path("logout/", account.LogoutView.as_view(), name="logout"),
    path("password-reset/", account.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        account.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        account.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        account.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("account/switch/", account.tenant_switch, name="tenant_switch"),
    path("dashboard/", overview.overview, name="overview"),
    path("dashboard/offers/<uuid:offer_id>/accept/", overview.offer_accept, name="offer_accept"),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_export, name="usage_export"),
    path("credits/", credits.credits_page, name="credits"),
    path("credits/packs/<int:pack_id>/buy/", credits.pack_buy, name="pack_buy"),
    path("credits/auto-topup/<slug:channel_code>/", credits.auto_topup_change, name="auto_topup"),
    path("notifications/", notifications.notification_list, name="notifications"),
    path("notifications/read/", notifications.notifications_read, name="notifications_read"),
    path("notifications/alerts/", alerts.threshold_add, name="alert_threshold_add"),
    path(
        "notifications/alerts/<int:threshold_id>/remove/",
        alerts.threshold_remove,
        name="alert_threshold_remove",
    ),
    path("notifications/recipients/", alerts.recipient_add, name="alert_recipient_add"),
    path(
        "notifications/recipients/<int:recipient_id>/remove/",
        alerts.recipient_remove,
        name="alert_recipient_remove",
    ),
    path("limits/requests/", limit_requests.limit_requests, name="limit_requests"),
    path("developers/", developers.developers, name="developers"),
    path("developers/keys/", developers.key_create, name="key_create"),
    path("developers/keys/<str:prefix>/revoke/", developers.key_revoke, name="key_revoke"),
    path("developers/webhooks/", developers.endpoint_create, name="endpoint_create"),
    path(
        "developers/webhooks/<uuid:endpoint_id>/rotate/",
        developers.endpoint_rotate,
        name="endpoint_rotate",
    ),
    path(
        "developers/webhooks/<uuid:endpoint_id>/test/",
        developers.endpoint_test,
        name="endpoint_test",
    ),
    path(
        "developers/webhooks/<uuid:endpoint_id>/delete/",
        developers.endpoint_delete,
        name="endpoint_delete",
    ),
    path(
        "developers/deliveries/<int:delivery_id>/retry/",
        developers.delivery_retry_view,
        name="delivery_retry",
    ),
    path("policy/", policy.policy, name="policy"),
    path("team/", team.team, name="team"),
    path("team/invite/", team.invite, name="invite"),
    path("team/members/<int:membership_id>/role/", team.member_role, name="member_role"),
    path("team/members/<int:membership_id>/remove/", team.member_remove, name="member_remove"),
    path(
        "team/invitations/<int:invitation_id>/withdraw/",
        team.invitation_withdraw,
        name="invitation_withdraw",
    ),
    path("invitations/<str:token>/", team.invitation, name="invitation"),
]
