"""Labeling pages."""

from django.urls import include, path

urlpatterns = [
    path("", include("labeling.views.core")),
    path("", include("labeling.views.annotate")),
    path("", include("labeling.views.review_labels")),
    path("", include("labeling.views.queues")),
    path("", include("labeling.views.settings")),
    path("", include("labeling.views.project_settings")),
    path("", include("labeling.views.exports")),
    path("", include("labeling.views.webhooks")),
]
