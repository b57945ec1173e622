from django.urls import path

from conversations import feedback_views, share_views, views

urlpatterns = [
    path("api/conversations", views.ConversationListCreateView.as_view(), name="conversation-list"),
    path(
        "api/conversations/search/by-title",
        views.ConversationTitleSearchView.as_view(),
        name="conversation-search-by-title",
    ),
    path("api/conversations/<uuid:id>", views.ConversationDetailView.as_view(), name="conversation-detail"),
    path("api/conversations/<uuid:id>/messages", views.MessageListCreateView.as_view(), name="conversation-messages"),
    path(
        "api/conversations/<uuid:id>/messages/recent",
        views.MessageRecentView.as_view(),
        name="conversation-messages-recent",
    ),
    path(
        "api/conversations/<uuid:id>/messages/<uuid:message_id>/activate",
        views.MessageActivateView.as_view(),
        name="conversation-message-activate",
    ),
    path(
        "api/conversations/<uuid:id>/messages/<uuid:message_id>/feedback",
        feedback_views.MessageFeedbackView.as_view(),
        name="conversation-message-feedback",
    ),
    path(
        "api/conversations/<uuid:id>/shares",
        share_views.ConversationShareListCreateView.as_view(),
        name="conversation-shares",
    ),
    path(
        "api/conversations/<uuid:id>/shares/<uuid:share_id>",
        share_views.ConversationShareDetailView.as_view(),
        name="conversation-share-detail",
    ),
    # Public: the token is the credential (its path segment is redacted from access logs).
    path("api/shares/<str:token>", share_views.SharedConversationView.as_view(), name="shared-conversation"),
    # The caller's data export, under the account's URLs (conversations/export.py).
    path("api/auth/me/export", views.AccountExportView.as_view(), name="me-export"),
]
