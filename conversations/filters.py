"""Query-string filters of the conversation list (django-filter; an invalid value is a 400
naming the parameter)."""

import django_filters
from django.conf import settings
from drf_spectacular.utils import extend_schema_field

from conversations.models import Conversation, ConversationStatus


def _agent_type_choices():
    return [(agent_type, agent_type) for agent_type in settings.AGENT_TYPES]


# The choices are read when the filter runs (settings may change them); the schema lists the
# agent types of the settings it is generated with, as AgentTypeEnum does for the bodies.
@extend_schema_field({"type": "string", "enum": list(settings.AGENT_TYPES)})
class AgentTypeFilter(django_filters.ChoiceFilter):
    pass


class ConversationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConversationStatus.choices)
    agent_type = AgentTypeFilter(choices=_agent_type_choices)

    class Meta:
        model = Conversation
        fields = ["status", "agent_type"]
