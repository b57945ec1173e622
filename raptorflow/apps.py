"""The core app. `raptorflow` is the lowest layer (SPEC §1): besides settings, tenancy,
errors, jobs and metrics it owns the tables every layer writes through it — the audit log
and the rate-limit windows — so nothing in core has to import `accounts` to reach them."""

from django.apps import AppConfig


class RaptorflowConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "raptorflow"
    label = "raptorflow"
    verbose_name = "RaptorFlow core"
