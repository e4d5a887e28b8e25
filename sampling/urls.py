"""Sampling pages: configuration and dashboards."""

from django.urls import include, path

urlpatterns = [
    path("", include("sampling.views.config")),
    path("", include("sampling.views.dashboards")),
    path("", include("sampling.views.data")),
    path("", include("sampling.views.alerts")),
]
