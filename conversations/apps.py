from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self):
        from conversations.feedback import feedback_metric_families
        from raptorflow import hooks

        # The feedback counts at /metrics, read at scrape time (raptorflow/metrics_view.py).
        hooks.scrape_time_metrics.register(feedback_metric_families)
