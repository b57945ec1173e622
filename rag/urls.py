from django.urls import path, re_path

from rag import views

urlpatterns = [
    path("api/conversations/<uuid:id>/reply", views.ReplyView.as_view(), name="conversation-reply"),
    path(
        "api/conversations/<uuid:id>/messages/<uuid:message_id>/edit",
        views.MessageEditView.as_view(),
        name="conversation-message-edit",
    ),
    path(
        "api/conversations/<uuid:id>/messages/<uuid:message_id>/regenerate",
        views.MessageRegenerateView.as_view(),
        name="conversation-message-regenerate",
    ),
    path(
        "api/conversations/<uuid:id>/replies/<uuid:reply_id>/events",
        views.ReplyEventsView.as_view(),
        name="conversation-reply-events",
    ),
    path(
        "api/conversations/<uuid:id>/replies/<uuid:reply_id>/cancel",
        views.ReplyCancelView.as_view(),
        name="conversation-reply-cancel",
    ),
    path("api/organizations/current/provider-keys", views.ProviderKeyListView.as_view(), name="provider-keys"),
    re_path(
        r"^api/organizations/current/provider-keys/(?P<provider>openai|gemini|openrouter)$",
        views.ProviderKeyDetailView.as_view(),
        name="provider-key",
    ),
]
