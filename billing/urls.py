from django.urls import path

from billing import views

urlpatterns = [
    path("api/billing/plans", views.PlanListView.as_view(), name="billing-plans"),
    path("api/billing/subscription", views.SubscriptionView.as_view(), name="billing-subscription"),
    path("api/billing/subscribe", views.SubscribeView.as_view(), name="billing-subscribe"),
    path("api/billing/cancel", views.CancelView.as_view(), name="billing-cancel"),
    path("api/billing/usage", views.UsageView.as_view(), name="billing-usage"),
    path("api/billing/webhook", views.RazorpayWebhookView.as_view(), name="billing-webhook"),
]
