"""Labeling API routes, one module per area."""

from django.urls import include, path

urlpatterns = [
    path("", include("labeling.api.projects")),
    path("", include("labeling.api.ingest")),
    path("", include("labeling.api.imports")),
    path("", include("labeling.api.queue")),
    path("", include("labeling.api.agreement")),
    path("", include("labeling.api.gold")),
    path("", include("labeling.api.history")),
    path("", include("labeling.api.review")),
    path("", include("labeling.api.queues")),
    path("", include("labeling.api.exports")),
    path("", include("labeling.api.webhooks")),
]
