"""Pages: the annotator's labelling page and the reviewer pages (queue health, disagreements and
adjudication, gold items).

The labelling page is a shell: ``static/flywheel/annotate.js`` fetches items from the JSON queue API
with the session and CSRF token, so the next item arrives without a page reload. Reviewer pages are
plain server-rendered forms that call the same services as the API.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from labeling.access import acting_user, has_capability, project_access, role_in
from labeling.errors import DomainError, Invalid
from labeling.forms import GoldRateForm
from labeling.models import Annotation, Assignment, Project, QueueItem, Role
from labeling.schema import question_choices, schema_for_display
from labeling.selectors import quality
from labeling.selectors.agreement import disagreement_items, disagreements, project_agreement
from labeling.selectors.gold import gold_candidates
from labeling.selectors.history import PERIODS, my_labels
from labeling.selectors.quality import annotator_quality
from labeling.selectors.queue import annotator_stats, queue_health, queue_progress
from labeling.selectors.queues import MAIN, queues_for
from labeling.services.annotations import annotation_adjudicate
from labeling.services.gold import gold_clear, gold_set
from labeling.services.projects import project_update
from labeling.services.queue import queue_item_reopen


@login_required
def annotate(request: HttpRequest, slug: str) -> HttpResponse:
    """The labelling page: guidelines, progress, timer; items come from the queue API."""
    project = project_access(user=request.user, slug=slug, need="label")
    role = role_in(user=request.user, project=project)
    # Annotators start at once. Anyone else (reviewer, admin) opening the page may only be looking:
    # they take a lease when they press Start, unless they already hold one here.
    holds_lease = Assignment.objects.filter(
        queue_item__project=project,
        annotator=acting_user(request.user),
        status=Assignment.Status.LEASED,
        lease_expires_at__gt=timezone.now(),
    ).exists()
    queues = queues_for(project=project, user=request.user)
    wanted = request.GET.get("queue", "")
    chosen = wanted if wanted == MAIN or any(q.slug == wanted for q in queues) else None
    only = f"?{urlencode({'queue': chosen})}" if chosen else ""
    progress = queue_progress(project=project, user=request.user, queue=chosen)
    config = {
        "slug": project.slug,
        "csrfToken": get_token(request),
        "nextUrl": reverse("labeling_api:queue-next", kwargs={"slug": project.slug}) + only,
        "progressUrl": reverse("labeling_api:queue-progress", kwargs={"slug": project.slug}) + only,
        "submitUrl": reverse("labeling_api:assignment-submit", kwargs={"assignment_id": 0}),
        "skipUrl": reverse("labeling_api:assignment-skip", kwargs={"assignment_id": 0}),
        "homeUrl": reverse("home"),
        "autoStart": role == Role.ANNOTATOR or holds_lease,
        "myLabelsUrl": reverse("labeling_api:my-labels", kwargs={"slug": project.slug}),
        "editUrl": reverse("labeling_api:annotation-edit", kwargs={"annotation_id": 0}),
        "editAnnotation": edit if (edit := request.GET.get("edit", "")).isdigit() else None,
        "queue": chosen,
        "commentsUrl": reverse(
            "labeling_api:item-comments", kwargs={"slug": project.slug, "item_id": 0}
        ),
        "returned": progress["returned"],
    }
    return render(
        request,
        "labeling/annotate.html",
        {
            "project": project,
            "config": config,
            "progress": progress,
            "can_review": _can_review(request.user, project),
            "role": role,
            "lease_minutes": max(1, round(project.lease_seconds / 60)),
            "queues": queues,
            "chosen_queue": chosen,
        },
    )


@login_required
def label_history(request: HttpRequest, slug: str) -> HttpResponse:
    """The annotator's own submitted labels (today, this week, all) with a link to change each."""
    project = project_access(user=request.user, slug=slug, need="label")
    period = request.GET.get("period", "today")
    if period not in PERIODS:
        period = "today"
    questions = schema_for_display(project.label_schema).get("questions", [])
    labels = my_labels(project=project, user=request.user, period=period)  # type: ignore[arg-type]
    rows = [
        {
            "annotation": a,
            "submitted_at": a.assignment.finished_at if a.assignment else a.created_at,
            "answers": [
                (q.get("prompt") or q["key"], _shown(a.values.get(q["key"])))
                for q in questions
                if a.values.get(q["key"]) not in (None, "", [])
            ],
        }
        for a in labels[:HISTORY_ROWS]
    ]
    return render(
        request,
        "labeling/history.html",
        {
            "project": project,
            "rows": rows,
            "period": period,
            "periods": [("today", "Today"), ("week", "Last 7 days"), ("all", "All")],
            "limit": HISTORY_ROWS,
        },
    )


HISTORY_ROWS = 200


def _can_review(user: Any, project: Project) -> bool:
    return has_capability(role=role_in(user=user, project=project), need="review")


def answer_fields(schema: dict[str, Any], *, has_alt_response: bool = True) -> list[dict[str, Any]]:
    """Schema questions as form fields for the reviewer pages (``name`` = question key)."""
    fields = []
    for q in schema_for_display(schema).get("questions", []):
        if q["type"] == "pairwise" and not has_alt_response:
            continue
        labels: list[tuple[str, str]] = []
        for choice in question_choices(q):
            if q["type"] == "rating":
                label = next(s["label"] for s in q["scale"] if s["value"] == choice)
                labels.append((str(choice), f"{choice} · {label}"))
            elif q["type"] == "binary":
                labels.append(("true" if choice else "false", "Yes" if choice else "No"))
            elif q["type"] == "pairwise":
                labels.append((choice, {"a": "A", "b": "B", "tie": "Tie"}[choice]))
            else:
                labels.append((choice, choice))
        fields.append({**q, "choices": labels})
    return fields


def values_from_post(schema: dict[str, Any], data: QueryDict) -> dict[str, Any]:
    """Parse a reviewer form (fields from ``answer_fields``) into submitted values; blanks are
    left out so ``values_validate(..., partial=True)`` sees only what the reviewer answered."""
    values: dict[str, Any] = {}
    for q in schema.get("questions", []):
        key, qtype = q["key"], q["type"]
        if qtype == "multi_choice":
            chosen = data.getlist(key)
            if chosen:
                values[key] = chosen
            continue
        raw = data.get(key, "")
        if raw == "":
            continue
        if qtype == "binary":
            values[key] = {"true": True, "false": False}.get(raw, raw)
        elif qtype == "rating":
            try:
                number = float(raw)
                values[key] = int(number) if number.is_integer() else number
            except ValueError:
                values[key] = raw
        else:
            values[key] = raw
    return values


def _shown(value: Any) -> str | None:
    """An answer as reviewers read it: lists joined, booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, dict) and "spans" in value:  # a spans answer
        marked = [f"{s.get('label')} “{s.get('text', '')}”" for s in value.get("spans") or []]
        return ", ".join(marked) or "nothing marked"
    return None if value is None else str(value)


@login_required
def review(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue health, annotator stats (throughput, gold accuracy), agreement, flagged items."""
    project = project_access(user=request.user, slug=slug, need="review")
    flagged = (
        QueueItem.objects.filter(project=project, status=QueueItem.Status.FLAGGED)
        .select_related("interaction")
        .order_by("id")[:100]
    )
    return render(
        request,
        "labeling/review.html",
        {
            "project": project,
            "health": queue_health(project=project),
            "annotators": annotator_stats(project=project),
            "quality": annotator_quality(project=project),
            "fast_ratio_percent": round(quality.FAST_RATIO * 100),
            "min_timed": quality.MIN_TIMED,
            "low_percent": round(quality.LOW_ACCURACY * 100),
            "few": quality.FEW,
            "agreement": project_agreement(project=project)["questions"],
            "flagged": flagged,
        },
    )


@login_required
@require_http_methods(["POST"])
def reopen(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="review")
    try:
        queue_item_reopen(queue_item_id=item_id, project=project, actor=acting_user(request.user))
        messages.success(request, f"Item {item_id} is back in the queue.")
    except DomainError as exc:
        messages.error(request, exc.text())
    return HttpResponseRedirect(reverse("review", kwargs={"slug": slug}))


@login_required
@require_http_methods(["GET", "POST"])
def review_disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    """Items whose annotators disagree, each with their answers and an adjudication form."""
    project = project_access(user=request.user, slug=slug, need="review")
    form_errors: dict[int, str] = {}
    if request.method == "POST":
        item = get_object_or_404(QueueItem, pk=request.POST.get("item"), project=project)
        values = values_from_post(project.label_schema, request.POST)
        try:
            annotation_adjudicate(
                queue_item=item,
                reviewer=acting_user(request.user),
                values=values,
                note=request.POST.get("note", ""),
            )
            messages.success(request, f"Adjudicated {item.interaction.external_id}.")
            return HttpResponseRedirect(reverse("review-disagreements", kwargs={"slug": slug}))
        except Invalid as exc:
            form_errors[item.pk] = exc.text()
    rows = disagreements(project=project)[:50]
    items = disagreement_items(rows)
    labels: dict[int, list[Annotation]] = {}
    for a in (
        Annotation.objects.filter(
            queue_item_id__in=list(items), kind=Annotation.Kind.LABEL, is_current=True
        )
        .select_related("annotator")
        .order_by("id")
    ):
        labels.setdefault(a.queue_item_id, []).append(a)
    questions = schema_for_display(project.label_schema).get("questions", [])
    cards = []
    for row in rows:
        item = items[row["queue_item_id"]]
        cards.append(
            {
                "item": item,
                "interaction": item.interaction,
                "disputed": row["questions"],
                "answers": [
                    {
                        "annotator": a.annotator.get_username(),
                        "values": [(q["key"], _shown(a.values.get(q["key"]))) for q in questions],
                    }
                    for a in labels.get(item.pk, [])
                ],
                "fields": answer_fields(
                    project.label_schema, has_alt_response=bool(item.interaction.alt_response)
                ),
                "error": form_errors.get(item.pk),
            }
        )
    return render(
        request,
        "labeling/disagreements.html",
        {"project": project, "cards": cards, "question_keys": [q["key"] for q in questions]},
    )


@login_required
@require_http_methods(["GET", "POST"])
def review_gold(request: HttpRequest, slug: str) -> HttpResponse:
    """Gold items: list them with annotators' accuracy, make an item gold, clear one."""
    project = project_access(user=request.user, slug=slug, need="review")
    error = None
    if request.method == "POST":
        action = request.POST.get("action", "set")
        lookup = request.POST.get("item", "").strip()
        item = (
            QueueItem.objects.filter(project=project)
            .filter(
                Q(interaction__external_id=lookup) | Q(pk=int(lookup) if lookup.isdigit() else None)
            )
            .first()
        )
        if item is None:
            error = f"No queued item with id or external id {lookup!r} in this project."
        elif action == "clear":
            gold_clear(queue_item=item, actor=acting_user(request.user))
            messages.success(request, f"{item.interaction.external_id} is no longer gold.")
            return HttpResponseRedirect(reverse("review-gold", kwargs={"slug": slug}))
        else:
            overlap_raw = request.POST.get("overlap", "").strip()
            try:
                gold_set(
                    queue_item=item,
                    actor=acting_user(request.user),
                    answer=values_from_post(project.label_schema, request.POST),
                    overlap=int(overlap_raw) if overlap_raw.isdigit() else None,
                )
                messages.success(request, f"{item.interaction.external_id} is now a gold item.")
                return HttpResponseRedirect(reverse("review-gold", kwargs={"slug": slug}))
            except Invalid as exc:
                error = exc.text()
    rate_form = None
    if has_capability(role=role_in(user=request.user, project=project), need="configure"):
        rate_form = GoldRateForm(initial={"gold_percent": round(project.gold_rate * 100, 2)})
    query = request.GET.get("q", "").strip()
    gold = [
        {"item": item, "answer": json.dumps(item.gold_answer, ensure_ascii=False)}
        for item in QueueItem.objects.filter(project=project, is_gold=True)
        .select_related("interaction")
        .order_by("id")[:200]
    ]
    return render(
        request,
        "labeling/gold.html",
        {
            "project": project,
            "gold": gold,
            "fields": answer_fields(project.label_schema),
            "annotators": annotator_stats(project=project),
            "error": error,
            "posted": request.POST if error else None,
            "candidates": gold_candidates(project=project, query=query)[:GOLD_CANDIDATES],
            "query": query,
            "rate_form": rate_form,
        },
    )


GOLD_CANDIDATES = 30


@login_required
@require_http_methods(["GET", "POST"])
def review_gold_item(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    """One queued item shown in full (conversation, response(s), labels so far) with the form
    that makes it gold: the reviewer sees what they are setting the answer of."""
    project = project_access(user=request.user, slug=slug, need="review")
    item = get_object_or_404(
        QueueItem.objects.select_related("interaction"), pk=item_id, project=project
    )
    error = None
    if request.method == "POST":
        overlap_raw = request.POST.get("overlap", "").strip()
        try:
            gold_set(
                queue_item=item,
                actor=acting_user(request.user),
                answer=values_from_post(project.label_schema, request.POST),
                overlap=int(overlap_raw) if overlap_raw.isdigit() else None,
            )
        except Invalid as exc:
            error = exc.text()
        else:
            messages.success(request, f"{item.interaction.external_id} is now a gold item.")
            return HttpResponseRedirect(reverse("review-gold", kwargs={"slug": slug}))
    interaction = item.interaction
    labels = (
        Annotation.objects.filter(queue_item=item, kind=Annotation.Kind.LABEL, is_current=True)
        .select_related("annotator")
        .order_by("id")
    )
    questions = schema_for_display(project.label_schema).get("questions", [])
    return render(
        request,
        "labeling/gold_item.html",
        {
            "project": project,
            "item": item,
            "interaction": interaction,
            "fields": answer_fields(
                project.label_schema, has_alt_response=bool(interaction.alt_response)
            ),
            "labels": [
                {
                    "annotator": a.annotator.get_username(),
                    "values": [(q["key"], _shown(a.values.get(q["key"]))) for q in questions],
                }
                for a in labels
            ],
            "current": json.dumps(item.gold_answer, ensure_ascii=False) if item.is_gold else "",
            "error": error,
        },
    )


@login_required
@require_http_methods(["POST"])
def review_gold_rate(request: HttpRequest, slug: str) -> HttpResponse:
    """Change how often gold items are mixed into queues (admins: it is a project setting)."""
    project = project_access(user=request.user, slug=slug, need="configure")
    form = GoldRateForm(request.POST)
    if form.is_valid():
        project_update(
            project=project,
            updated_by=acting_user(request.user),
            data={"gold_rate": form.cleaned_data["gold_percent"] / 100},
        )
        messages.success(request, f"Gold rate is now {form.cleaned_data['gold_percent']:g}%.")
    else:
        messages.error(request, "Gold rate: give a percentage from 0 to 100.")
    return HttpResponseRedirect(reverse("review-gold", kwargs={"slug": slug}))
