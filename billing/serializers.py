"""Input and output shapes of the billing endpoints."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.catalogue import PLANS
from billing.models import Plan, Subscription, SubscriptionStatus, WebhookOutcome
from billing.webhooks import DUPLICATE
from raptorflow.api import StrictSerializer


class QuotasSerializer(serializers.Serializer):
    messages = serializers.IntegerField(source="messages_limit")
    reply_tokens = serializers.IntegerField(source="reply_tokens_limit")
    embeddings = serializers.IntegerField(source="embeddings_limit")


class PlanSerializer(serializers.ModelSerializer):
    quotas = QuotasSerializer(source="*", help_text="Monthly quotas.")

    class Meta:
        model = Plan
        fields = ["code", "name", "description", "price_paise", "currency", "quotas"]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "plan",
            "status",
            "razorpay_subscription_id",
            "short_url",
            "current_start",
            "current_end",
            "charge_at",
            "ended_at",
            "paid_count",
            "cancel_at_cycle_end",
            "last_payment_failed_at",
            "last_payment_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class BillingStatusSerializer(serializers.Serializer):
    plan = PlanSerializer(help_text="The plan whose quotas apply now (free without an entitled subscription).")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    subscription = SubscriptionSerializer(
        allow_null=True, help_text="The organization's newest subscription, whatever its status; null if none."
    )


# The catalogue's paid plans: what a client can subscribe to (the free plan needs no
# subscription). A plan added later in the admin is refused by the schema until it is listed here.
PAID_PLAN_CODES = [plan["code"] for plan in PLANS if plan["price_paise"] > 0]


@extend_schema_field({"type": "string", "enum": PAID_PLAN_CODES})
class PlanCodeField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        # PostgreSQL text cannot hold NUL: such a code names no plan, and must not reach the query.
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


class SubscribeInputSerializer(StrictSerializer):
    plan = PlanCodeField(
        slug_field="code",
        queryset=Plan.objects.filter(is_active=True),
        error_messages={"does_not_exist": "No plan is named {value}."},
    )


class CancelInputSerializer(StrictSerializer):
    at_cycle_end = serializers.BooleanField(
        default=False, help_text="Keep an active subscription until the end of the paid period."
    )


class CheckoutPrefillSerializer(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.EmailField()


class CheckoutNotesSerializer(serializers.Serializer):
    organization_id = serializers.UUIDField()


class CheckoutSerializer(serializers.Serializer):
    """Everything Razorpay Checkout's options need on the client."""

    key_id = serializers.CharField(help_text="Razorpay's public key id: Checkout's `key`.")
    subscription_id = serializers.CharField(help_text="Checkout's `subscription_id`.")
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices)
    short_url = serializers.CharField(help_text="Razorpay's hosted payment page, an alternative to Checkout.")
    name = serializers.CharField()
    description = serializers.CharField()
    plan = PlanSerializer()
    prefill = CheckoutPrefillSerializer()
    notes = CheckoutNotesSerializer()
    subscription = SubscriptionSerializer()


class CounterSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Never below 0.")


class BillingUsageSerializer(serializers.Serializer):
    plan = serializers.CharField(help_text="Code of the plan whose quotas apply.")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    resets_at = serializers.DateTimeField(help_text="When the counters start again (the period's end).")
    messages = CounterSerializer()
    reply_tokens = CounterSerializer()
    embeddings = CounterSerializer(help_text="Counted, never refused.")


class RazorpaySubscriptionEntitySerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices)
    plan_id = serializers.CharField()
    current_start = serializers.IntegerField(allow_null=True, help_text="Unix seconds.")
    current_end = serializers.IntegerField(allow_null=True, help_text="Unix seconds.")
    charge_at = serializers.IntegerField(allow_null=True, help_text="Unix seconds.")
    ended_at = serializers.IntegerField(allow_null=True, help_text="Unix seconds.")
    paid_count = serializers.IntegerField()
    short_url = serializers.CharField()


class RazorpayPaymentEntitySerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    subscription_id = serializers.CharField(required=False)
    error_description = serializers.CharField(allow_null=True, required=False)


class RazorpaySubscriptionWrapperSerializer(serializers.Serializer):
    entity = RazorpaySubscriptionEntitySerializer()


class RazorpayPaymentWrapperSerializer(serializers.Serializer):
    entity = RazorpayPaymentEntitySerializer()


class RazorpayEventPayloadSerializer(serializers.Serializer):
    subscription = RazorpaySubscriptionWrapperSerializer(required=False)
    payment = RazorpayPaymentWrapperSerializer(required=False)


class RazorpayEventSerializer(serializers.Serializer):
    """The parts of a Razorpay webhook event this backend reads (documentation only: the
    view verifies and reads the raw body itself)."""

    entity = serializers.CharField(help_text='Always "event".')
    account_id = serializers.CharField()
    event = serializers.CharField(help_text="e.g. subscription.activated, payment.failed.")
    contains = serializers.ListField(child=serializers.CharField())
    payload = RazorpayEventPayloadSerializer()
    created_at = serializers.IntegerField(help_text="Unix seconds; events are applied in this order.")


class WebhookAckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[*WebhookOutcome.values, DUPLICATE])
