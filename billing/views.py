"""Billing endpoints: plans, the organization's subscription and usage, subscribe, cancel,
and Razorpay's webhook."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import razorpay, selectors, services, webhooks
from billing.serializers import (
    BillingStatusSerializer,
    BillingUsageSerializer,
    CancelInputSerializer,
    CheckoutSerializer,
    PlanSerializer,
    RazorpayEventSerializer,
    SubscribeInputSerializer,
    SubscriptionSerializer,
    WebhookAckSerializer,
)
from raptorflow.api import TenantAPIView, validated
from raptorflow.errors import DomainError, NotConfigured
from raptorflow.openapi import error_responses
from raptorflow.pagination import paginator_with_ordering

BILLING_TAG = ["billing"]
PRODUCT_NAME = "RaptorFlow"


class PlanListView(TenantAPIView):
    serializer_class = PlanSerializer
    filter_backends: list = []
    pagination_class = paginator_with_ordering("price_paise", "code")

    @extend_schema(responses={200: PlanSerializer(many=True)}, tags=BILLING_TAG, description="Plans on offer.")
    def get(self, request):
        # The plan catalogue is the same for every organization: nothing to scope.
        page = self.paginate_queryset(selectors.active_plans())
        return self.get_paginated_response(PlanSerializer(page, many=True).data)


class SubscriptionView(TenantAPIView):
    @extend_schema(
        responses={200: BillingStatusSerializer},
        tags=BILLING_TAG,
        description="The plan in effect for the caller's organization, its period, and its newest subscription.",
    )
    def get(self, request):
        current = selectors.entitlement(self.organization)
        return Response(
            BillingStatusSerializer(
                {
                    "plan": current.plan,
                    "period_start": current.period_start,
                    "period_end": current.period_end,
                    "subscription": selectors.latest_subscription(self.organization),
                }
            ).data
        )


class SubscribeView(TenantAPIView):
    @extend_schema(
        request=SubscribeInputSerializer,
        responses={201: CheckoutSerializer, 200: CheckoutSerializer, **error_responses(403, 409, 502, 503)},
        tags=BILLING_TAG,
        description=(
            "Creates the Razorpay subscription for a paid plan and answers Checkout's options (201); asked "
            "again before Checkout completes, the same subscription (200). Owners and admins only; 409 while "
            "another subscription is live; 503 until Razorpay is configured."
        ),
    )
    def post(self, request):
        data = validated(SubscribeInputSerializer, request.data)
        plan = data["plan"]
        subscription, created = services.subscription_start(actor=self.caller.membership, plan=plan)
        checkout = {
            "key_id": razorpay.key_id(),
            "subscription_id": subscription.razorpay_subscription_id,
            "status": subscription.status,
            "short_url": subscription.short_url,
            "name": PRODUCT_NAME,
            "description": f"{plan.name} plan for {self.organization.name}",
            "plan": plan,
            "prefill": {"name": request.user.name, "email": request.user.email},
            "notes": {"organization_id": self.organization.pk},
            "subscription": subscription,
        }
        return Response(
            CheckoutSerializer(checkout).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class CancelView(TenantAPIView):
    @extend_schema(
        request=CancelInputSerializer,
        responses={200: SubscriptionSerializer, **error_responses(403, 409, 502, 503)},
        tags=BILLING_TAG,
        description=(
            "Cancels the organization's subscription, now or at the end of the paid period. Owners and admins "
            "only; 409 when there is nothing to cancel; 503 until Razorpay is configured."
        ),
    )
    def post(self, request):
        data = validated(CancelInputSerializer, request.data)
        subscription = services.subscription_cancel(actor=self.caller.membership, at_cycle_end=data["at_cycle_end"])
        return Response(SubscriptionSerializer(subscription).data)


class UsageView(TenantAPIView):
    @extend_schema(
        responses={200: BillingUsageSerializer},
        tags=BILLING_TAG,
        description="This period's usage of the caller's organization against its plan's quotas.",
    )
    def get(self, request):
        current = selectors.entitlement(self.organization)
        usage = selectors.usage_for_period(self.organization, current.period_start)

        def counter(used: int, limit: int) -> dict:
            return {"used": used, "limit": limit, "remaining": max(limit - used, 0)}

        return Response(
            BillingUsageSerializer(
                {
                    "plan": current.plan.code,
                    "period_start": current.period_start,
                    "period_end": current.period_end,
                    "resets_at": current.period_end,
                    "messages": counter(usage.messages if usage else 0, current.messages_limit),
                    "reply_tokens": counter(usage.reply_tokens if usage else 0, current.reply_tokens_limit),
                    "embeddings": counter(usage.embeddings if usage else 0, current.embeddings_limit),
                }
            ).data
        )


class RazorpayWebhookView(APIView):
    """Razorpay's calls: no token, authenticated by the body's signature instead."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RazorpayEventSerializer,
        parameters=[
            OpenApiParameter(
                "X-Razorpay-Signature",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="HMAC-SHA256 (hex) of the raw body with RAZORPAY_WEBHOOK_SECRET.",
            ),
            OpenApiParameter(
                "X-Razorpay-Event-Id", str, OpenApiParameter.HEADER, description="Razorpay's id of the event."
            ),
        ],
        responses={200: WebhookAckSerializer, **error_responses(503)},
        tags=BILLING_TAG,
        auth=[],
        description=(
            "Razorpay webhook. 400 for a missing or wrong signature (nothing changes); each event once, by its "
            "id or its signed body; a signed event with unusable values is acknowledged as `ignored`."
        ),
    )
    def post(self, request):
        # The raw bytes, before any parser: the signature covers them exactly.
        body = request.body
        secret = settings.RAZORPAY_WEBHOOK_SECRET
        if not secret:
            raise NotConfigured("Razorpay webhooks are not configured on this server: set RAZORPAY_WEBHOOK_SECRET.")
        signature = request.headers.get("X-Razorpay-Signature", "")
        if not razorpay.webhook_signature_is_valid(body, signature, secret):
            raise DomainError(
                "The X-Razorpay-Signature header is missing or does not match the body.", code="invalid_signature"
            )
        # Parsed here from the raw bytes (DRF's parser is not involved); a signed event with
        # values that cannot be used is acknowledged as ignored, never an error (webhooks.py).
        try:
            outcome = webhooks.receive(body=body, event_id=request.headers.get("X-Razorpay-Event-Id", ""))
        except webhooks.NotAnEvent as exc:
            raise ParseError(str(exc)) from None
        return Response({"status": outcome})
