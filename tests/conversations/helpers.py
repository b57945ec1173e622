"""Assertion helpers of the conversations tests."""

from conversations.models import Conversation, Message


def snapshot(conversation) -> dict:
    """Everything stored about a conversation: its row and its messages' rows."""
    return {
        "conversation": Conversation.objects.filter(pk=conversation.pk).values().first(),
        "messages": list(Message.objects.filter(conversation_id=conversation.pk).order_by("sequence").values()),
    }


def error_fields(response) -> dict:
    return response.json()["error"]["fields"]
