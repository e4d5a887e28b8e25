"""API: ingest. (Views and this module's urlpatterns.)"""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
