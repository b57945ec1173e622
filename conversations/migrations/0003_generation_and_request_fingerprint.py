"""A reply's server-owned data moves out of the client's `metadata` into a read-only
`generation` object, and keyed messages record the fingerprint of their request.

Until now a reply kept provider, model, usage, context and completion in `metadata`, where
a client could write the same keys on its own messages. Rows whose metadata has exactly the
shape the reply endpoint wrote (and whose `reply_to` is an earlier user message of the same
conversation) get those keys moved to `generation`; their metadata keeps the client's own
keys and `response_time_ms`. Anything else is left as it is: a client's look-alike keys stay
the client's data and never become a generation.
"""

import uuid

from django.conf import settings
from django.db import migrations, models

BATCH = 500
# The keys rag.replies.reply_store wrote into metadata before this migration.
LEGACY_KEYS = (
    "reply_to",
    "provider",
    "model",
    "response_time_ms",
    "usage",
    "context",
    "prompt_tokens_estimated",
    "incomplete",
    "error",
)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return False
    return isinstance(value, str)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_score(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def generation_from_metadata(metadata) -> dict | None:
    """The generation of a reply stored before this migration, or None when `metadata` is
    not what the reply endpoint wrote."""
    if not isinstance(metadata, dict):
        return None
    usage, context = metadata.get("usage"), metadata.get("context")
    well_formed = (
        _is_uuid(metadata.get("reply_to"))
        and isinstance(metadata.get("provider"), str)
        and isinstance(metadata.get("model"), str)
        and isinstance(usage, dict)
        and _is_count(usage.get("prompt_tokens"))
        and _is_count(usage.get("completion_tokens"))
        and isinstance(context, list)
        and all(isinstance(e, dict) and _is_uuid(e.get("message_id")) and _is_score(e.get("score")) for e in context)
    )
    if not well_formed:
        return None
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    generation = {
        "reply_to": metadata["reply_to"],
        "provider": metadata["provider"],
        "model": metadata["model"],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated": usage.get("estimated") is True,
        },
        "response_time_ms": metadata["response_time_ms"] if _is_count(metadata.get("response_time_ms")) else 0,
        "sources": [
            {
                "message_id": e["message_id"],
                "score": e["score"],
                "similarity": e.get("similarity") if _is_score(e.get("similarity")) else None,
                "source": e.get("source") if isinstance(e.get("source"), str) else "recent",
            }
            for e in context
        ],
        "status": "incomplete" if metadata.get("incomplete") is True else "complete",
    }
    if generation["status"] == "incomplete":
        message = metadata.get("error") if isinstance(metadata.get("error"), str) else "The reply was interrupted."
        code = "client_disconnected" if "disconnected" in message else "reply_interrupted"
        generation["error"] = {"code": code, "message": message}
    return generation


def move_reply_keys_to_generation(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    candidates = (
        Message.objects.filter(role="assistant", generation__isnull=True, metadata__has_key="reply_to")
        .only("id", "conversation_id", "sequence", "metadata")
        .order_by("pk")
    )
    batch = []
    for message in candidates.iterator(chunk_size=BATCH):
        batch.append(message)
        if len(batch) == BATCH:
            _move_batch(Message, batch)
            batch = []
    if batch:
        _move_batch(Message, batch)


def _move_batch(Message, messages):
    generations = {m.pk: generation_from_metadata(m.metadata) for m in messages}
    asked = Message.objects.filter(
        id__in=[g["reply_to"] for g in generations.values() if g is not None], role="user"
    ).values_list("id", "conversation_id", "sequence")
    questions = {str(id_): (conversation_id, sequence) for id_, conversation_id, sequence in asked}
    changed = []
    for message in messages:
        generation = generations[message.pk]
        if generation is None:
            continue
        question = questions.get(generation["reply_to"])
        if question is None or question[0] != message.conversation_id or question[1] >= message.sequence:
            continue
        metadata = {key: value for key, value in message.metadata.items() if key not in LEGACY_KEYS}
        metadata["response_time_ms"] = generation["response_time_ms"]
        message.metadata, message.generation = metadata, generation
        changed.append(message)
    Message.objects.bulk_update(changed, ["metadata", "generation"])


def move_generation_back_to_metadata(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    replies = Message.objects.filter(generation__isnull=False).only("id", "metadata", "generation").order_by("pk")
    batch = []
    for message in replies.iterator(chunk_size=BATCH):
        generation = message.generation
        usage = {k: v for k, v in generation["usage"].items() if k != "estimated" or v}
        message.metadata = {
            **message.metadata,
            "reply_to": generation.get("reply_to"),
            "provider": generation["provider"],
            "model": generation["model"],
            "response_time_ms": generation["response_time_ms"],
            "usage": usage,
            "context": generation["sources"],
        }
        if generation["status"] != "complete":
            message.metadata["incomplete"] = True
            message.metadata["error"] = (generation.get("error") or {}).get("message", "The reply was interrupted.")
        message.generation = None
        batch.append(message)
        if len(batch) == BATCH:
            Message.objects.bulk_update(batch, ["metadata", "generation"])
            batch = []
    Message.objects.bulk_update(batch, ["metadata", "generation"])


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_move_audit_log_and_rate_limits_to_core'),
        ('conversations', '0002_title_trigram_index_where_available'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='generation',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='message',
            name='request_fingerprint',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AddConstraint(
            model_name='message',
            constraint=models.CheckConstraint(condition=models.Q(('generation__isnull', True), ('role', 'assistant'), _connector='OR'), name='message_generation_only_on_replies'),
        ),
        migrations.RunPython(move_reply_keys_to_generation, move_generation_back_to_metadata, elidable=False),
    ]
