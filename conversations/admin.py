"""Operators' view of conversations. Messages are shown, never added or edited here:
sequence numbers and counters have one writer, conversations.services."""

from django.contrib import admin
from django.utils.text import Truncator

from conversations import feedback, services
from conversations.models import Conversation, Message, RatedMessage
from raptorflow.admin import ViewOnlyAdmin


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["sequence", "role", "content_preview", "created_at"]
    readonly_fields = fields
    ordering = ["sequence"]
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="content")
    def content_preview(self, message):
        return Truncator(message.content).chars(200)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "organization", "agent_type", "status", "message_count", "activity_at"]
    list_filter = ["status", "agent_type", "organization"]
    search_fields = ["title", "owner__email", "organization__name"]
    list_select_related = ["owner", "organization"]
    ordering = ["-activity_at"]
    fields = [
        "id",
        "organization",
        "owner",
        "title",
        "agent_type",
        "status",
        "metadata",
        "message_count",
        "usage",
        "created_at",
        "updated_at",
        "last_message_at",
        "activity_at",
    ]
    readonly_fields = [
        "id",
        "organization",
        "owner",
        "agent_type",
        "message_count",
        "usage",
        "created_at",
        "updated_at",
        "last_message_at",
        "activity_at",
    ]
    inlines = [MessageInline]

    def has_add_permission(self, request):
        # Conversations are created by their owners through the API.
        return False

    def save_model(self, request, obj, form, change):
        services.conversation_update(conversation=obj, **{name: form.cleaned_data[name] for name in form.changed_data})

    def get_deleted_objects(self, objs, request):
        # Everything that cascades from a conversation (its messages, their embeddings) is
        # its own data and is deliberately not deletable on its own in the admin; the
        # permission to delete the conversation is what counts.
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    def delete_model(self, request, obj):
        services.conversation_delete(conversation=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for conversation in queryset:
            services.conversation_delete(conversation=conversation, actor=request.user)


@admin.register(Message)
class MessageAdmin(ViewOnlyAdmin):
    list_display = ["conversation", "sequence", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["conversation__title", "owner__email"]
    list_select_related = ["conversation"]
    ordering = ["-created_at"]
    readonly_fields = [
        "id",
        "conversation",
        "organization",
        "owner",
        "role",
        "content",
        "metadata",
        "sequence",
        "idempotency_key",
        "created_at",
    ]
    fields = readonly_fields


@admin.register(RatedMessage)
class FeedbackAdmin(ViewOnlyAdmin):
    """Ratings of replies; the changelist opens with their counts per agent type, provider,
    model and rating (conversations.feedback.feedback_counts), and its filters count too."""

    change_list_template = "admin/conversations/feedback_change_list.html"
    list_display = ["feedback_rating", "agent_type", "provider", "model", "comment_preview", "feedback_at"]
    list_filter = ["feedback_rating", "conversation__agent_type", "organization"]
    show_facets = admin.ShowFacets.ALWAYS
    list_select_related = ["conversation"]
    ordering = ["-feedback_at"]
    fields = ["id", "conversation", "organization", "owner", "content", "generation", "feedback_rating",
              "feedback_comment", "feedback_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(feedback_rating__isnull=False)

    @admin.display(description="agent type")
    def agent_type(self, message):
        return message.conversation.agent_type

    @admin.display(description="provider")
    def provider(self, message):
        return (message.generation or {}).get("provider", "")

    @admin.display(description="model")
    def model(self, message):
        return (message.generation or {}).get("model", "")

    @admin.display(description="comment")
    def comment_preview(self, message):
        return Truncator(message.feedback_comment).chars(120)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "feedback_counts": feedback.feedback_counts()}
        return super().changelist_view(request, extra_context=extra_context)
