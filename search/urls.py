from django.urls import path

from search import views

urlpatterns = [
    path("api/search/embed-text", views.EmbedTextView.as_view(), name="search-embed-text"),
    path("api/search/embed-and-store", views.EmbedAndStoreView.as_view(), name="search-embed-and-store"),
    path("api/search/semantic-search", views.SemanticSearchView.as_view(), name="search-semantic"),
    path("api/search/semantic-search/global", views.GlobalSemanticSearchView.as_view(), name="search-semantic-global"),
    path("api/search/embedding-stats", views.EmbeddingStatsView.as_view(), name="search-embedding-stats"),
    path("api/search/embeddings/<uuid:id>", views.EmbeddingDeleteView.as_view(), name="search-embedding-delete"),
    path("api/search/batch-embed", views.BatchEmbedView.as_view(), name="search-batch-embed"),
]
