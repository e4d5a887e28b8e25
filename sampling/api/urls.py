"""Sampling API routes, one module per area."""

from django.urls import include, path

urlpatterns = [
    path("", include("sampling.api.strategies")),
    path("", include("sampling.api.runs")),
    path("", include("sampling.api.estimates")),
    path("", include("sampling.api.alerts")),
]
