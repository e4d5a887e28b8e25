"""Root URL conf: the API under /api/, the browser UI, admin and the OpenAPI docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("", include("labeling.api.otlp")),  # OTLP/HTTP: /v1/traces
    path("api/", include("sampling.api.urls")),
    path("api/", include("sampling.judges.api")),
    path("", include("sampling.urls")),
    path("", include("sampling.judges.views")),
    path("", include("labeling.urls")),
]
