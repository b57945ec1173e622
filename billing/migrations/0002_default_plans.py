"""The plan catalogue every installation starts with. Prices and quotas are edited in the
admin afterwards; the paid plans need their Razorpay plan id there before anyone can
subscribe. The free plan's empty quotas follow the FREE_PLAN_* settings."""

from django.db import migrations

PLANS = [
    {
        "code": "free",
        "name": "Free",
        "description": "For trying RaptorFlow out.",
        "price_paise": 0,
    },
    {
        "code": "pro",
        "name": "Pro",
        "description": "For a marketer using RaptorFlow every day.",
        "price_paise": 99_900,
        "message_quota": 10_000,
        "reply_token_quota": 2_000_000,
        "embedding_quota": 20_000,
    },
    {
        "code": "team",
        "name": "Team",
        "description": "For a marketing team sharing one organization.",
        "price_paise": 299_900,
        "message_quota": 50_000,
        "reply_token_quota": 10_000_000,
        "embedding_quota": 100_000,
    },
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for plan in PLANS:
        Plan.objects.get_or_create(code=plan["code"], defaults=plan)


def remove_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(code__in=[plan["code"] for plan in PLANS], subscriptions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_plans, remove_plans)]
