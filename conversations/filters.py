"""Query-string filters of the conversation list (django-filter; an invalid value is a 400
naming the parameter): status, agent_type, pinned, tag, and pinned_first, which puts the
pinned conversations before the others (each group newest activity first).

The list is paginated by a cursor over one position, `list_position` (annotated here):
the newest activity, moved PINNED_AHEAD into the future for pinned conversations when
pinned_first is asked, so one ordering serves both and every cursor stays valid."""

from datetime import timedelta

import django_filters
from django.conf import settings
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Value, When
from drf_spectacular.utils import extend_schema_field

from conversations.models import TAG_MAX_CHARS, Conversation, ConversationStatus
from conversations.tags import normalize_tag, tag_problem

# Far beyond any real activity time, well inside PostgreSQL's timestamp range.
PINNED_AHEAD = timedelta(days=365 * 1000)
BOOLEAN_CHOICES = [("true", "true"), ("false", "false")]


def _agent_type_choices():
    return [(agent_type, agent_type) for agent_type in settings.AGENT_TYPES]


# Django's text fields refuse NUL (ProhibitNullCharactersValidator): the schema says so.
@extend_schema_field({"type": "string", "maxLength": TAG_MAX_CHARS, "pattern": "^[^\\x00]*$"})
class TagFilter(django_filters.CharFilter):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TAG_MAX_CHARS)
        super().__init__(method=self.filter_tag, **kwargs)

    @staticmethod
    def filter_tag(queryset, name, value):
        if not value:
            return queryset
        if tag_problem(value):
            # No conversation can carry it (tags are printable text; PostgreSQL text holds
            # no NUL): it matches nothing, as the schema's plain string promises, rather
            # than a 400 for a value the schema allows.
            return queryset.none()
        return queryset.filter(tags__contains=[normalize_tag(value)])


# The choices are read when the filter runs (settings may change them); the schema lists the
# agent types of the settings it is generated with, as AgentTypeEnum does for the bodies.
@extend_schema_field({"type": "string", "enum": list(settings.AGENT_TYPES)})
class AgentTypeFilter(django_filters.ChoiceFilter):
    pass


# "true" / "false" as text: without this the schema types `pinned` as the model's boolean
# with a text enum, which no client can satisfy.
@extend_schema_field({"type": "string", "enum": ["false", "true"]})
class TextBooleanFilter(django_filters.ChoiceFilter):
    pass


class ConversationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConversationStatus.choices)
    agent_type = AgentTypeFilter(choices=_agent_type_choices)
    pinned = TextBooleanFilter(
        choices=BOOLEAN_CHOICES,
        method="filter_pinned",
        help_text="true: only pinned conversations; false: only the others.",
    )
    tag = TagFilter(
        help_text="Only conversations with this tag (compared in lower case; a value no tag can be matches nothing)."
    )
    pinned_first = django_filters.ChoiceFilter(
        choices=BOOLEAN_CHOICES,
        method="keep",
        help_text="true: pinned conversations first, then the others; each newest activity first.",
    )

    class Meta:
        model = Conversation
        fields = ["status", "agent_type", "pinned", "tag", "pinned_first"]

    def filter_pinned(self, queryset, name, value):
        return queryset.filter(pinned=value == "true")

    def keep(self, queryset, name, value):
        # Applied as the list's order in filter_queryset below.
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        position = F("activity_at")
        if self.form.cleaned_data.get("pinned_first") == "true":
            position = Case(When(pinned=True, then=F("activity_at") + Value(PINNED_AHEAD)), default=F("activity_at"))
        return queryset.annotate(list_position=ExpressionWrapper(position, output_field=DateTimeField()))
