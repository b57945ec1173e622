from django.urls import path

from documents import views

urlpatterns = [
    path("api/documents", views.DocumentListCreateView.as_view(), name="documents"),
    path("api/documents/<uuid:id>", views.DocumentDetailView.as_view(), name="document-detail"),
    path("api/documents/<uuid:id>/file", views.DocumentFileView.as_view(), name="document-file"),
    path("api/documents/<uuid:id>/chunks", views.DocumentChunksView.as_view(), name="document-chunks"),
    path("api/documents/<uuid:id>/reprocess", views.DocumentReprocessView.as_view(), name="document-reprocess"),
    path("api/search/documents", views.DocumentSearchView.as_view(), name="search-documents"),
]
