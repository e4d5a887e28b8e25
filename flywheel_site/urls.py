"""Root URL conf: the API under /api/, OTLP at /v1/traces, the browser UI, admin, the API docs.

Each app's routes live in its own ``urls.py`` (pages) and ``api/urls.py`` (the API, namespaced
``labeling_api`` / ``sampling_api``); docs/architecture.md ("URLs") has the convention.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labeling.api.urls import otlp_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("api/", include("sampling.api.urls")),
    path("", include(otlp_urlpatterns)),  # OTLP/HTTP: /v1/traces
    path("", include("sampling.urls")),
    path("", include("labeling.urls")),
]
