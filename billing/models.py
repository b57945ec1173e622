"""Plans, Razorpay subscriptions, per-period usage and the webhook events received."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from raptorflow.tenancy import TenantQuerySet, TenantScope

FREE_PLAN_CODE = "free"


class Plan(models.Model):
    """What an organization pays for and the monthly quotas it gets. Not tenant-owned: the
    same catalogue for everyone, edited in the admin."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    price_paise = models.PositiveIntegerField(default=0, help_text="Monthly price in paise (₹1 = 100 paise).")
    currency = models.CharField(max_length=3, default="INR")
    razorpay_plan_id = models.CharField(
        max_length=64, blank=True, help_text="The plan's id in the Razorpay dashboard (plan_…); paid plans need it."
    )
    # Empty quotas are allowed on the free plan only: they follow the FREE_PLAN_* settings,
    # so development is generous and production is set by the environment.
    message_quota = models.PositiveBigIntegerField(null=True, blank=True)
    reply_token_quota = models.PositiveBigIntegerField(null=True, blank=True)
    embedding_quota = models.PositiveBigIntegerField(null=True, blank=True)
    # Standing totals (not per period): documents kept and their bytes. Empty follows the
    # FREE_PLAN_DOCUMENTS / FREE_PLAN_DOCUMENT_BYTES settings.
    document_quota = models.PositiveIntegerField(null=True, blank=True)
    document_bytes_quota = models.PositiveBigIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True, help_text="Listed and open to new subscriptions.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["price_paise", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(code=FREE_PLAN_CODE)
                | Q(message_quota__isnull=False, reply_token_quota__isnull=False, embedding_quota__isnull=False),
                name="plan_quotas_set_unless_free",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_free(self) -> bool:
        return self.code == FREE_PLAN_CODE

    @property
    def messages_limit(self) -> int:
        return self.message_quota if self.message_quota is not None else settings.FREE_PLAN_MESSAGES

    @property
    def reply_tokens_limit(self) -> int:
        return self.reply_token_quota if self.reply_token_quota is not None else settings.FREE_PLAN_REPLY_TOKENS

    @property
    def embeddings_limit(self) -> int:
        return self.embedding_quota if self.embedding_quota is not None else settings.FREE_PLAN_EMBEDDINGS

    @property
    def documents_limit(self) -> int:
        return self.document_quota if self.document_quota is not None else settings.FREE_PLAN_DOCUMENTS

    @property
    def document_bytes_limit(self) -> int:
        if self.document_bytes_quota is not None:
            return self.document_bytes_quota
        return settings.FREE_PLAN_DOCUMENT_BYTES


class SubscriptionStatus(models.TextChoices):
    """Razorpay's own subscription states."""

    CREATED = "created", "Created (checkout not completed)"
    AUTHENTICATED = "authenticated", "Authenticated"
    ACTIVE = "active", "Active"
    PENDING = "pending", "Pending (charge failing, retrying)"
    HALTED = "halted", "Halted (retries exhausted)"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"


# A subscription in one of these gives its plan's quotas; any other falls back to free.
ENTITLED_STATUSES = (SubscriptionStatus.AUTHENTICATED, SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
# Razorpay never moves a subscription out of these, so neither do we (whatever the order
# its events arrive in).
FINAL_STATUSES = (SubscriptionStatus.CANCELLED, SubscriptionStatus.COMPLETED, SubscriptionStatus.EXPIRED)
LIVE_STATUSES = tuple(s for s in SubscriptionStatus if s not in FINAL_STATUSES)


class SubscriptionQuerySet(TenantQuerySet):
    def live(self):
        return self.filter(status__in=LIVE_STATUSES)

    def entitled(self):
        return self.filter(status__in=ENTITLED_STATUSES)


class Subscription(models.Model):
    """One Razorpay subscription of an organization. An organization without an entitled
    one is on the free plan; no row is needed for that."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="billing_subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    razorpay_subscription_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.CREATED)
    short_url = models.URLField(max_length=500, blank=True)
    current_start = models.DateTimeField(null=True, blank=True)
    current_end = models.DateTimeField(null=True, blank=True)
    charge_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    paid_count = models.PositiveIntegerField(default=0)
    cancel_at_cycle_end = models.BooleanField(default=False)
    # created_at of the newest Razorpay event applied: an older one arriving late is skipped.
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_payment_failed_at = models.DateTimeField(null=True, blank=True)
    last_payment_error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in SubscriptionStatus]), name="subscription_status_valid"
            ),
            # Subscribing again is refused while one is live, so an organization is never
            # billed twice.
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(status__in=[s.value for s in LIVE_STATUSES]),
                name="subscription_one_live_per_org",
            ),
        ]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.organization} · {self.plan} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class UsageQuerySet(TenantQuerySet):
    pass


class Usage(models.Model):
    """What an organization used in one billing period. Counters only ever grow through
    single UPDATE statements (billing.quotas), never read-modify-write."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    messages = models.PositiveBigIntegerField(default=0)
    reply_tokens = models.PositiveBigIntegerField(default=0)
    embeddings = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UsageQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start"]
        verbose_name_plural = "usage"
        constraints = [
            models.UniqueConstraint(fields=["organization", "period_start"], name="usage_one_row_per_period"),
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")), name="usage_period_valid"),
        ]

    def __str__(self):
        return f"{self.organization} from {self.period_start:%Y-%m-%d}"


class WebhookOutcome(models.TextChoices):
    APPLIED = "applied", "Applied"
    STALE = "stale", "Skipped: older than the state already applied"
    IGNORED = "ignored", "Ignored: unknown event or subscription, or unusable values"


class WebhookEvent(models.Model):
    """Each Razorpay event, stored once: the unique event id and the unique hash of the
    signed body turn a redelivery into a no-op (the event id header is not signed, so a
    replayed body under a new one is recognised by its hash). Not tenant-owned (the admin
    reads it)."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.CharField(max_length=100, unique=True)
    # sha256 (hex) of the raw signed body; null on events stored before it was kept.
    body_sha256 = models.CharField(max_length=64, null=True, blank=True, unique=True)
    event = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(help_text="When Razorpay created the event.")
    received_at = models.DateTimeField(auto_now_add=True)
    razorpay_subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=WebhookOutcome.choices)
    # Why an event was ignored without effect when its values could not be used.
    reason = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.event} {self.event_id}"
