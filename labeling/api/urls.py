"""Labeling API routes, mounted at ``/api/`` as the ``labeling_api`` namespace.

Every route is a ``path()`` ending with a slash; a project slug is ``<project:slug>``
(``labeling/routing.py``). Names are ``<noun>`` or ``<noun>-<verb>`` without an ``api-`` prefix:
``reverse("labeling_api:queue-next", kwargs={"slug": ...})``. The slash-less forms in
``SLASHLESS`` are kept because clients already call them (docs/api.md, "Paths and their trailing
slash", says which client and why); they reach the same view, never a redirect.

``otlp_urlpatterns`` is mounted at the site root (the OTLP spec fixes ``/v1/traces``).
"""

from __future__ import annotations

from django.urls import path

from labeling.api import (
    agreement,
    erasure,
    exports,
    gold,
    history,
    imports,
    ingest,
    otlp,
    projects,
    queue,
    queues,
    review,
    webhooks,
)
from labeling.routing import slashless_aliases

app_name = "labeling_api"

P = "projects/<project:slug>/"

routes = [
    # projects, members, ingestion tokens
    path("projects/", projects.ProjectsApi.as_view(), name="projects"),
    path(P, projects.ProjectDetailApi.as_view(), name="project"),
    path(f"{P}members/", projects.MembersApi.as_view(), name="members"),
    path(f"{P}members/<str:username>/", projects.MemberDetailApi.as_view(), name="member"),
    path(
        f"{P}members/<str:username>/skills/",
        queues.MemberSkillsApi.as_view(),
        name="member-skills",
    ),
    path(f"{P}ingest-tokens/", projects.IngestTokensApi.as_view(), name="ingest-tokens"),
    path(
        f"{P}ingest-tokens/<int:token_id>/",
        projects.IngestTokenDetailApi.as_view(),
        name="ingest-token",
    ),
    # ingestion
    path("ingest/whoami/", ingest.IngestWhoamiApi.as_view(), name="ingest-whoami"),
    path(f"{P}interactions/", ingest.InteractionsApi.as_view(), name="interactions"),
    path(f"{P}interactions/bulk/", ingest.InteractionsBulkApi.as_view(), name="interactions-bulk"),
    path(
        f"{P}interactions/erase/",
        erasure.InteractionsEraseApi.as_view(),
        name="interactions-erase",
    ),
    path(f"{P}events/", ingest.EventsApi.as_view(), name="events"),
    path(f"{P}import/", imports.ImportApi.as_view(), name="import"),
    # the labeling queue and assignments
    path(f"{P}queue/next/", queue.QueueNextApi.as_view(), name="queue-next"),
    path(f"{P}queue/progress/", queue.QueueProgressApi.as_view(), name="queue-progress"),
    path(f"{P}queue/health/", queue.QueueHealthApi.as_view(), name="queue-health"),
    path(
        "assignments/<int:assignment_id>/submit/",
        queue.AssignmentSubmitApi.as_view(),
        name="assignment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/skip/",
        queue.AssignmentSkipApi.as_view(),
        name="assignment-skip",
    ),
    path(f"{P}queues/", queues.QueuesApi.as_view(), name="queues"),
    path(f"{P}queues/<int:queue_id>/", queues.QueueDetailApi.as_view(), name="queue"),
    # agreement, adjudication, gold, review, history
    path(f"{P}agreement/", agreement.AgreementApi.as_view(), name="agreement"),
    path(f"{P}disagreements/", agreement.DisagreementListApi.as_view(), name="disagreements"),
    path(f"{P}gold/", gold.GoldListApi.as_view(), name="gold-list"),
    path(
        f"{P}items/<int:item_id>/adjudicate/", agreement.AdjudicateApi.as_view(), name="adjudicate"
    ),
    path(f"{P}items/<int:item_id>/gold/", gold.GoldApi.as_view(), name="gold"),
    path(f"{P}items/<int:item_id>/reopen/", queue.QueueItemReopenApi.as_view(), name="item-reopen"),
    path(
        f"{P}items/<int:item_id>/annotations/",
        history.AnnotationHistoryApi.as_view(),
        name="annotation-history",
    ),
    path(
        f"{P}items/<int:item_id>/comments/",
        review.ItemCommentsApi.as_view(),
        name="item-comments",
    ),
    path(
        f"{P}annotations/<int:annotation_id>/review/",
        review.AnnotationReviewApi.as_view(),
        name="annotation-review",
    ),
    path(
        "annotations/<int:annotation_id>/edit/",
        history.AnnotationEditApi.as_view(),
        name="annotation-edit",
    ),
    path(f"{P}my-labels/", history.MyLabelsApi.as_view(), name="my-labels"),
    # exports
    path(f"{P}exports/", exports.ProjectExportsApi.as_view(), name="exports"),
    path("exports/<int:export_id>/", exports.ExportDetailApi.as_view(), name="export"),
    path("exports/<int:export_id>/retry/", exports.ExportRetryApi.as_view(), name="export-retry"),
    path(
        "exports/<int:export_id>/download/",
        exports.ExportDownloadApi.as_view(),
        name="export-download",
    ),
    # webhooks
    path(f"{P}webhooks/", webhooks.WebhooksApi.as_view(), name="webhooks"),
    path(f"{P}webhooks/<int:webhook_id>/", webhooks.WebhookDetailApi.as_view(), name="webhook"),
    path(
        f"{P}webhooks/<int:webhook_id>/rotate-secret/",
        webhooks.WebhookRotateApi.as_view(),
        name="webhook-rotate",
    ),
    path(
        f"{P}webhooks/<int:webhook_id>/test/",
        webhooks.WebhookTestApi.as_view(),
        name="webhook-test",
    ),
    path(
        f"{P}webhooks/<int:webhook_id>/deliveries/",
        webhooks.WebhookDeliveriesApi.as_view(),
        name="webhook-deliveries",
    ),
    path(
        f"{P}webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/",
        webhooks.WebhookDeliveryApi.as_view(),
        name="webhook-delivery",
    ),
]

# Slash-less forms clients already call (docs/api.md, "Paths and their trailing slash").
SLASHLESS = (
    "ingest-whoami",  # the SDK's logger (flywheel_sdk/logger.py), docs/api.md, docs/sdk.md
    "interactions-bulk",  # the SDK's logger, docs/ingestion.md, bench/
    "import",  # docs/importers.md
    "queue-next",  # docs/api.md, docs/labeling.md, bench/replay.py
    "queue-progress",  # docs/labeling.md
    "queue-health",  # docs/labeling.md
    "assignment-submit",  # docs/api.md, bench/replay.py
    "assignment-skip",  # docs/api.md, bench/replay.py
    "queue",  # docs/api.md (PATCH|DELETE .../queues/{id})
    "member-skills",  # docs/api.md (PUT .../members/{username}/skills)
    "adjudicate",  # docs/labeling.md
    "gold",  # docs/labeling.md
    "item-reopen",  # docs/labeling.md
    "item-comments",  # docs/api.md
    "annotation-review",  # docs/api.md
    "annotation-edit",  # docs/labeling.md
    "export-retry",  # docs/exports.md
    "export-download",  # the SDK, docs/exports.md, and every export's manifest and download_url
    "webhook-rotate",  # docs/api.md, docs/webhooks.md
    "webhook-test",  # docs/webhooks.md
)

urlpatterns = routes + slashless_aliases(routes, SLASHLESS)

otlp_routes = [path("v1/traces/", otlp.OtlpTracesApi.as_view(), name="traces")]
# The OTLP/HTTP spec fixes the path every exporter posts to: /v1/traces.
otlp_urlpatterns = (otlp_routes + slashless_aliases(otlp_routes, ["traces"]), "otlp")
