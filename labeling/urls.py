"""Labeling pages, mounted at the site root.

Same convention as the API (``labeling/routing.py``, docs/architecture.md "URLs"): ``path()``
only, a trailing slash on every route, ``<project:slug>`` for the project. Page names are global
(no namespace) and name the page: ``project-<noun>`` for a project's settings pages, the area
otherwise (``annotate``, ``review-gold``); templates link with ``{% url %}``.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from labeling.views import (
    annotate,
    core,
    exports,
    project_settings,
    queues,
    review_labels,
    settings,
    webhooks,
)
from labeling.views.login import ThrottledLoginView

P = "p/<project:slug>/"

urlpatterns = [
    path("", core.home, name="home"),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/new/", project_settings.project_new, name="project-new"),
    path(P, core.project_home, name="project-home"),
    # labeling and review
    path(f"{P}label/", annotate.annotate, name="annotate"),
    path(f"{P}label/history/", annotate.label_history, name="label-history"),
    path(f"{P}review/", annotate.review, name="review"),
    path(f"{P}review/items/<int:item_id>/reopen/", annotate.reopen, name="review-reopen"),
    path(f"{P}review/disagreements/", annotate.review_disagreements, name="review-disagreements"),
    path(f"{P}review/gold/", annotate.review_gold, name="review-gold"),
    path(f"{P}review/gold/rate/", annotate.review_gold_rate, name="review-gold-rate"),
    path(f"{P}review/gold/<int:item_id>/", annotate.review_gold_item, name="review-gold-item"),
    path(f"{P}review/labels/", review_labels.review_labels, name="review-labels"),
    # project settings
    path(f"{P}settings/", project_settings.project_settings, name="project-settings"),
    path(f"{P}queues/", queues.queues_page, name="project-queues"),
    path(f"{P}members/", settings.members, name="project-members"),
    path(f"{P}members/<int:membership_id>/", settings.member_change, name="project-member-change"),
    path(f"{P}tokens/", settings.tokens, name="project-tokens"),
    path(f"{P}tokens/<int:token_id>/revoke/", settings.token_revoke, name="project-token-revoke"),
    path(f"{P}schema/", settings.schema, name="project-schema"),
    # exports and webhooks
    path(f"{P}exports/", exports.exports_page, name="project-exports"),
    path(
        f"{P}exports/<int:export_id>/retry/",
        exports.export_retry_page,
        name="project-export-retry",
    ),
    path(f"{P}webhooks/", webhooks.webhooks, name="project-webhooks"),
    path(f"{P}webhooks/<int:webhook_id>/", webhooks.webhook_detail, name="project-webhook"),
    path(
        f"{P}webhooks/<int:webhook_id>/action/",
        webhooks.webhook_action,
        name="project-webhook-action",
    ),
]
