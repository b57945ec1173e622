"""The plan catalogue every installation starts with. Prices and quotas are edited in the
admin afterwards; the paid plans need their Razorpay plan id there before anyone can
subscribe. The free plan's empty quotas follow the FREE_PLAN_* settings."""

from django.db import migrations

from billing.catalogue import PLANS, ensure_default_plans


def create_plans(apps, schema_editor):
    ensure_default_plans(apps.get_model("billing", "Plan"))


def remove_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(code__in=[plan["code"] for plan in PLANS], subscriptions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_plans, remove_plans)]
