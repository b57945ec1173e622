"""Query-string filters of the conversation list (django-filter; an invalid value is a 400
naming the parameter)."""

import django_filters
from django.conf import settings

from conversations.models import Conversation, ConversationStatus


def _agent_type_choices():
    return [(agent_type, agent_type) for agent_type in settings.AGENT_TYPES]


class ConversationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConversationStatus.choices)
    agent_type = django_filters.ChoiceFilter(choices=_agent_type_choices)

    class Meta:
        model = Conversation
        fields = ["status", "agent_type"]
