from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from raptorflow.health import HealthView
from raptorflow.metrics_view import metrics_view
from raptorflow.views import RootView

handler400 = "raptorflow.middleware.json_handler400"
handler404 = "raptorflow.middleware.json_handler404"
handler500 = "raptorflow.middleware.json_handler500"

urlpatterns = [
    path("", RootView.as_view(), name="root"),
    path("health", HealthView.as_view(), name="health"),
    # django-prometheus's metrics and the product's own, behind METRICS_TOKEN (raptorflow/metrics.py).
    path("metrics", metrics_view, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file (/docs?script=), not inline,
    # so the Content-Security-Policy allows no inline scripts.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("accounts.urls")),
    # rag before conversations: /api/conversations/{id}/reply is served by rag.
    path("", include("rag.urls")),
    path("", include("conversations.urls")),
    path("", include("search.urls")),
    path("", include("documents.urls")),
    path("", include("billing.urls")),
]
