"""Feedback on assistant messages: the owner's thumbs up or down, with an optional
comment, kept on the message itself (one rating per message; rating again replaces it).

Counted per agent type, provider and model at /metrics (`feedback_metric_families`, read
from the database at scrape time so every process reports the same figure) and in the
admin (`feedback_counts`).
"""

from django.db import transaction
from django.db.models import Count, F
from django.db.models.fields.json import KT
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from conversations.models import Message, MessageRole
from raptorflow.errors import InvalidInput

FEEDBACK_COMMENT_MAX_CHARS = 2000
ONLY_REPLIES = "Feedback is taken on assistant messages only."


def _require_reply(message: Message) -> None:
    if message.role != MessageRole.ASSISTANT:
        raise InvalidInput({"message_id": [ONLY_REPLIES]})


@transaction.atomic
def message_feedback_set(*, message: Message, rating: str, comment: str = "") -> tuple[Message, bool]:
    """Rates `message` (an assistant message): (message, True when it had no rating)."""
    _require_reply(message)
    # Under the row's lock, so two ratings at once cannot both report "created".
    locked = Message.objects.select_for_update().only("id", "feedback_rating").get(pk=message.pk)
    created = locked.feedback_rating is None
    message.feedback_rating, message.feedback_comment, message.feedback_at = rating, comment, timezone.now()
    message.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    return message, created


@transaction.atomic
def message_feedback_clear(*, message: Message) -> Message:
    """Takes the rating back; a message without one stays as it is."""
    _require_reply(message)
    message.feedback_rating, message.feedback_comment, message.feedback_at = None, "", None
    message.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    return message


def feedback_counts() -> list[dict]:
    """[{agent_type, provider, model, rating, count}] over every organization (for the
    operators: /metrics and the admin). Messages stored through POST …/messages have no
    generation: their provider and model are ""."""
    rows = (
        Message.objects.filter(feedback_rating__isnull=False)
        .values(
            agent_type=F("conversation__agent_type"),
            provider=KT("generation__provider"),
            model=KT("generation__model"),
            rating=F("feedback_rating"),
        )
        .annotate(count=Count("id"))
        .order_by("agent_type", "provider", "model", "rating")
    )
    return [{**row, "provider": row["provider"] or "", "model": row["model"] or ""} for row in rows]


def feedback_metric_families():
    """The feedback counts as a Prometheus gauge (hooks.scrape_time_metrics)."""
    family = GaugeMetricFamily(
        "raptorflow_message_feedback",
        "Rated assistant messages, by agent type, provider, model and rating (up or down).",
        labels=["agent_type", "provider", "model", "rating"],
    )
    for row in feedback_counts():
        family.add_metric([row["agent_type"], row["provider"], row["model"], row["rating"]], row["count"])
    yield family

