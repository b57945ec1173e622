"""Operators' view of billing: plans are edited here; subscriptions, usage and webhook
events are mostly Razorpay's record and are shown read-only where editing would lie."""

import json

from django.contrib import admin
from django.utils.html import format_html

from billing.models import Plan, Subscription, Usage, WebhookEvent


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "price_paise",
        "razorpay_plan_id",
        "message_quota",
        "reply_token_quota",
        "embedding_quota",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["code", "name", "razorpay_plan_id"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "is_active"]}),
        ("Price", {"fields": ["price_paise", "currency", "razorpay_plan_id"]}),
        (
            "Monthly quotas",
            {
                "fields": ["message_quota", "reply_token_quota", "embedding_quota"],
                "description": "On the free plan, an empty quota follows the FREE_PLAN_* settings.",
            },
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["organization", "plan", "status", "razorpay_subscription_id", "current_end", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["razorpay_subscription_id", "organization__name", "organization__id"]
    list_select_related = ["organization", "plan"]
    raw_id_fields = ["organization", "created_by"]
    # Razorpay owns these; an operator changes a subscription in its dashboard and the
    # webhook brings the change here.
    readonly_fields = [
        "razorpay_subscription_id",
        "status",
        "short_url",
        "current_start",
        "current_end",
        "charge_at",
        "ended_at",
        "paid_count",
        "cancel_at_cycle_end",
        "last_event_at",
        "last_payment_failed_at",
        "last_payment_error",
        "created_at",
        "updated_at",
    ]


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    list_display = ["organization", "period_start", "period_end", "messages", "reply_tokens", "embeddings"]
    search_fields = ["organization__name", "organization__id"]
    list_select_related = ["organization"]
    raw_id_fields = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "period_start"


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event", "outcome", "razorpay_subscription_id", "created_at", "received_at"]
    list_filter = ["event", "outcome"]
    search_fields = ["event_id", "razorpay_subscription_id"]
    date_hierarchy = "received_at"
    fields = [
        "event_id",
        "event",
        "outcome",
        "razorpay_subscription_id",
        "created_at",
        "received_at",
        "pretty_payload",
    ]
    readonly_fields = fields

    @admin.display(description="Payload")
    def pretty_payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Viewing stays allowed (view permission); the record of what Razorpay said is not editable.
        return False
