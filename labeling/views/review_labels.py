"""Reviewer page: items with flags and comments, and every current label with Accept / Reject
(with a note). A rejected label goes back to its annotator (see labeling.services.review)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling.access import acting_user, project_access
from labeling.errors import DomainError
from labeling.models import Annotation, ItemComment, QueueItem
from labeling.schema import schema_for_display
from labeling.selectors.review import (
    REVIEW_FILTERS,
    ReviewFilter,
    items_to_review,
    review_counts,
)
from labeling.services.review import annotation_review, comment_add, comment_resolve
from labeling.views.annotate import _shown

CARDS = 30
TABS = [
    ("flags", "Flags"),
    ("comments", "Comments"),
    ("unreviewed", "Not reviewed"),
    ("rejected", "Sent back"),
    ("all", "All"),
]


def _post(request: HttpRequest, project: Any) -> str:
    """Carry out one form of the page; returns the message to show."""
    actor = acting_user(request.user)
    action = request.POST.get("action", "")
    if action == "review":
        annotation = annotation_review(
            annotation_id=int(request.POST.get("annotation") or 0),
            project=project,
            reviewer=actor,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", ""),
        )
        verb = "Accepted" if annotation.review_status == "accepted" else "Sent back"
        return f"{verb} {annotation.annotator.get_username()}'s label."
    if action == "resolve":
        comment_resolve(
            comment_id=int(request.POST.get("comment") or 0), project=project, actor=actor
        )
        return "Flag resolved."
    item = get_object_or_404(QueueItem, pk=request.POST.get("item") or 0, project=project)
    comment_add(
        queue_item=item,
        author=actor,
        body=request.POST.get("body", ""),
        flag=request.POST.get("flag") == "on",
        reviewer=True,
    )
    return "Comment added."


@login_required
@require_http_methods(["GET", "POST"])
def review_labels(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="review")
    shown = request.GET.get("show", "flags")
    which: ReviewFilter = next((f for f in REVIEW_FILTERS if f == shown), "flags")
    if request.method == "POST":
        try:
            messages.success(request, _post(request, project))
        except (DomainError, ValueError) as exc:
            messages.error(request, exc.text() if isinstance(exc, DomainError) else str(exc))
        url = reverse("review-labels", kwargs={"slug": slug}) + f"?show={which}"
        return HttpResponseRedirect(url)
    items = list(items_to_review(project=project, which=which)[:CARDS])
    ids = [i.pk for i in items]
    labels: dict[int, list[Annotation]] = {}
    for a in (
        Annotation.objects.filter(
            queue_item_id__in=ids, kind=Annotation.Kind.LABEL, is_current=True
        )
        .select_related("annotator", "reviewed_by")
        .order_by("id")
    ):
        labels.setdefault(a.queue_item_id, []).append(a)
    comments: dict[int, list[ItemComment]] = {}
    for c in ItemComment.objects.filter(queue_item_id__in=ids).select_related(
        "author", "resolved_by"
    ):
        comments.setdefault(c.queue_item_id, []).append(c)
    questions = schema_for_display(project.label_schema).get("questions", [])
    cards = [
        {
            "item": item,
            "interaction": item.interaction,
            "comments": comments.get(item.pk, []),
            "labels": [
                {
                    "annotation": a,
                    "answers": [
                        (q.get("prompt") or q["key"], _shown(a.values.get(q["key"])))
                        for q in questions
                        if a.values.get(q["key"]) not in (None, "", [])
                    ],
                }
                for a in labels.get(item.pk, [])
            ],
        }
        for item in items
    ]
    counts = review_counts(project=project)
    return render(
        request,
        "labeling/review_labels.html",
        {
            "project": project,
            "cards": cards,
            "which": which,
            "tabs": [(key, name, counts[key]) for key, name in TABS],
            "limit": CARDS,
        },
    )
