"""API: the annotation queue (next item, submit, skip), progress and health, agreement,
disagreements and adjudication, gold items, annotation history and edits.

Every view resolves its project through ``labeling.access.project_access``; assignments and
annotations are looked up among the caller's own rows, so someone else's id is a 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import re_path
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import IngestClient, acting_user, has_capability, project_access, role_in
from labeling.errors import DomainError, Invalid
from labeling.models import Annotation, Assignment, Interaction, Project, QueueItem
from labeling.schema import item_texts, schema_for_display, text_sha256
from labeling.selectors.agreement import disagreements, project_agreement
from labeling.selectors.queue import (
    annotation_history,
    annotator_stats,
    queue_health,
    queue_progress,
)
from labeling.selectors.queues import earlier_answers, queue_payload
from labeling.selectors.review import suggestion_for
from labeling.services.annotations import annotation_adjudicate, annotation_edit
from labeling.services.gold import gold_clear, gold_set
from labeling.services.queue import (
    assignment_claim,
    assignment_skip,
    assignment_submit,
    queue_item_reopen,
)

SLUG = r"(?P<slug>[-a-zA-Z0-9_]+)"


def _id(raw: str) -> int:
    """A URL id; one beyond the database's integer range cannot exist (404, not a 500)."""
    value = int(raw)
    if value > 2**63 - 1:
        raise Http404("Not found.")
    return value


def _invalid_values(exc: Invalid) -> ValidationError:
    return ValidationError(
        {"detail": "Some answers are invalid: see the marked questions.", "values": exc.errors}
    )


def _own_assignment(*, user: Any, assignment_id: int) -> Assignment:
    """The caller's assignment in a project where they may still label; otherwise 404."""
    if isinstance(user, IngestClient):
        raise PermissionDenied("An ingestion token can only ingest.")
    assignment = (
        Assignment.objects.select_related("queue_item__project")
        .filter(pk=assignment_id, annotator=user)
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment.")
    # The same rule as project_access, on the project already loaded (one query fewer).
    role = role_in(user=user, project=assignment.queue_item.project)
    if role is None:
        raise Http404("No such assignment.")
    if not has_capability(role=role, need="label"):
        raise PermissionDenied(f"Your role ({role}) cannot label in this project.")
    return assignment


def _item_in(project: Project, item_id: int) -> QueueItem:
    item = QueueItem.objects.filter(pk=item_id, project=project).first()
    if item is None:
        raise Http404("No such queue item.")
    return item


def interaction_payload(interaction: Interaction) -> dict[str, Any]:
    return {
        "external_id": interaction.external_id,
        "messages": interaction.messages,
        "response": interaction.response,
        "alt_response": interaction.alt_response or None,
        "model_version": interaction.model_version,
        "alt_model_version": interaction.alt_model_version or None,
        "segment": interaction.segment,
        # Span answers quote these: offsets are pinned to the exact text shown.
        "text_sha256": {
            field: text_sha256(text) for field, text in item_texts(interaction).items()
        },
    }


def assignment_payload(assignment: Assignment, project: Project) -> dict[str, Any]:
    """The queue/next answer (docs/api.md); gold items look like any other item. ``suggestion``
    is null unless the project shows suggestions (then the submit records ``saw_suggestion``)."""
    interaction = assignment.queue_item.interaction  # loaded by assignment_claim
    return {
        "id": assignment.pk,
        "queue_item_id": assignment.queue_item_id,
        "interaction": interaction_payload(interaction),
        "schema": schema_for_display(project.label_schema),
        "schema_version": project.schema_version,
        "lease_expires_at": assignment.lease_expires_at,
        "leased_at": assignment.leased_at,
        "suggestion": suggestion_for(project=project, interaction=interaction),
        "queue": queue_payload(assignment.queue_item),
        "earlier_answers": earlier_answers(
            queue_item=assignment.queue_item, annotator=assignment.annotator_id
        ),
    }


class InteractionOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    messages = serializers.ListField(child=serializers.DictField())
    response = serializers.CharField()
    alt_response = serializers.CharField(allow_null=True)
    model_version = serializers.CharField()
    alt_model_version = serializers.CharField(allow_null=True)
    segment = serializers.DictField()
    text_sha256 = serializers.DictField(child=serializers.CharField())


class ProgressOutputSerializer(serializers.Serializer):
    done_today = serializers.IntegerField()
    done_total = serializers.IntegerField()
    left = serializers.IntegerField()
    returned = serializers.IntegerField()


class QuestionAgreementSerializer(serializers.Serializer):
    key = serializers.CharField()
    type = serializers.CharField()
    alpha = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True, required=False)
    items = serializers.IntegerField()


class DisagreementOutputSerializer(serializers.Serializer):
    queue_item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    questions = serializers.ListField(child=serializers.CharField())
    adjudicated = serializers.BooleanField()


class GoldOutputSerializer(serializers.Serializer):
    queue_item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    gold_answer = serializers.JSONField()
    overlap = serializers.IntegerField()
    done_count = serializers.IntegerField()
    status = serializers.CharField()


def _status_serializer(name: str) -> Any:
    return inline_serializer(
        name=name, fields={"id": serializers.IntegerField(), "status": serializers.CharField()}
    )


QUEUE_PARAMETER = OpenApiParameter(
    "queue", str, description="only this named queue (its slug, or 'main'); default: all yours"
)


class QueueNextApi(APIView):
    """Lease the next item to the caller: 200 with the assignment, or 204 when none is left."""

    @extend_schema_serializer(component_name="QueueNextOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        queue_item_id = serializers.IntegerField()
        interaction = InteractionOutputSerializer()
        schema = serializers.DictField()
        schema_version = serializers.IntegerField()
        lease_expires_at = serializers.DateTimeField()
        leased_at = serializers.DateTimeField()
        suggestion = serializers.DictField(allow_null=True)
        queue = serializers.DictField(allow_null=True)
        earlier_answers = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        request=None,
        parameters=[QUEUE_PARAMETER],
        responses={200: OutputSerializer, 204: None},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        assignment = assignment_claim(
            project=project,
            annotator=acting_user(request.user),
            queue=request.query_params.get("queue") or None,
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = self.OutputSerializer(assignment_payload(assignment, project)).data
        return Response(data)


class QueueProgressApi(APIView):
    """The caller's progress in a project: ``done_today``, ``done_total``, ``left``."""

    @extend_schema(parameters=[QUEUE_PARAMETER], responses={200: ProgressOutputSerializer})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        queue = request.query_params.get("queue") or None
        return Response(queue_progress(project=project, user=request.user, queue=queue))


class QueueHealthApi(APIView):
    """Queue health (backlog, leases, expired leases, skips, flagged) and annotator stats."""

    @extend_schema(
        responses={
            200: inline_serializer(
                name="QueueHealth",
                fields={
                    "health": serializers.DictField(child=serializers.IntegerField()),
                    "annotators": serializers.ListField(child=serializers.DictField()),
                },
            )
        }
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        return Response(
            {
                "health": queue_health(project=project),
                "annotators": annotator_stats(project=project),
            }
        )


class AssignmentSubmitApi(APIView):
    """Submit answers for a leased item: 201 with the new annotation. With ``?next=1`` (and
    optionally ``&queue=<slug>|main``) the answer also carries ``next``: the caller's next
    assignment as ``queue/next`` gives it (null when nothing is left), saving the labelling page
    a round trip after every submit. The claim is a separate transaction after the submit's."""

    @extend_schema_serializer(component_name="AssignmentSubmitInput")
    class InputSerializer(serializers.Serializer):
        values = serializers.JSONField()
        time_spent_ms = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=24 * 3600 * 1000
        )

    @extend_schema_serializer(component_name="AssignmentSubmitOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment = serializers.IntegerField(source="assignment_id")
        values = serializers.JSONField()
        version = serializers.IntegerField()
        schema_version = serializers.IntegerField()
        time_spent_ms = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()
        next = serializers.DictField(allow_null=True, required=False)

    @extend_schema(
        request=InputSerializer,
        parameters=[
            OpenApiParameter("next", bool, description="also lease and return the next item"),
            QUEUE_PARAMETER,
        ],
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, assignment_id: str) -> Response:
        own = _own_assignment(user=request.user, assignment_id=_id(assignment_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            annotation = assignment_submit(
                assignment_id=_id(assignment_id),
                annotator=acting_user(request.user),
                values=data.validated_data["values"],
                time_spent_ms=data.validated_data.get("time_spent_ms"),
            )
        except Invalid as exc:
            raise _invalid_values(exc) from exc
        answer = dict(self.OutputSerializer(annotation).data)
        answer.pop("next", None)  # present only when asked for
        if request.query_params.get("next") in ("1", "true"):
            project = own.queue_item.project
            try:
                nxt = assignment_claim(
                    project=project,
                    annotator=acting_user(request.user),
                    queue=request.query_params.get("queue") or None,
                )
            except DomainError:
                pass  # no "next": the client asks queue/next, which explains the refusal
            else:
                answer["next"] = (
                    None
                    if nxt is None
                    else QueueNextApi.OutputSerializer(assignment_payload(nxt, project)).data
                )
        return Response(answer, status=status.HTTP_201_CREATED)


class AssignmentSkipApi(APIView):
    """Give an item back with a reason; someone else gets it."""

    @extend_schema_serializer(component_name="AssignmentSkipInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(request=InputSerializer, responses={200: _status_serializer("SkipResult")})
    def post(self, request: Request, assignment_id: str) -> Response:
        _own_assignment(user=request.user, assignment_id=_id(assignment_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = assignment_skip(
            assignment_id=_id(assignment_id),
            annotator=acting_user(request.user),
            reason=data.validated_data.get("reason", ""),
        )
        return Response({"id": assignment.pk, "status": assignment.status})


class AgreementApi(APIView):
    """Per question: Krippendorff's alpha, mean pairwise Cohen's kappa, items with overlap."""

    @extend_schema(
        responses={
            200: inline_serializer(
                name="Agreement", fields={"questions": QuestionAgreementSerializer(many=True)}
            )
        }
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        return Response(project_agreement(project=project))


class DisagreementListApi(APIView):
    """Items whose annotators disagree (paginated); ``?all=1`` includes adjudicated ones."""

    @extend_schema(responses={200: DisagreementOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        rows = disagreements(
            project=project, include_adjudicated=request.query_params.get("all") == "1"
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self) or []
        items = {
            i.pk: i
            for i in QueueItem.objects.filter(
                pk__in=[r["queue_item_id"] for r in page]
            ).select_related("interaction")
        }
        for row in page:
            row["external_id"] = items[row["queue_item_id"]].interaction.external_id
        return paginator.get_paginated_response(page)


class AdjudicateApi(APIView):
    """A reviewer records the answer for a disputed item (only the questions given): 201."""

    @extend_schema_serializer(component_name="AdjudicateInput")
    class InputSerializer(serializers.Serializer):
        values = serializers.JSONField()
        note = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                name="Adjudication",
                fields={
                    "id": serializers.IntegerField(),
                    "values": serializers.JSONField(),
                    "version": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request: Request, slug: str, item_id: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = _item_in(project, _id(item_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            annotation = annotation_adjudicate(
                queue_item=item,
                reviewer=acting_user(request.user),
                values=data.validated_data["values"],
                note=data.validated_data.get("note", ""),
            )
        except Invalid as exc:
            raise _invalid_values(exc) from exc
        return Response(
            {"id": annotation.pk, "values": annotation.values, "version": annotation.version},
            status=status.HTTP_201_CREATED,
        )


class GoldListApi(APIView):
    """Gold items of a project with their answers (paginated)."""

    @extend_schema(responses={200: GoldOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        qs = (
            QueueItem.objects.filter(project=project, is_gold=True)
            .select_related("interaction")
            .order_by("id")
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response([_gold_row(i) for i in page])


def _gold_row(item: QueueItem) -> dict[str, Any]:
    return {
        "queue_item_id": item.pk,
        "external_id": item.interaction.external_id,
        "gold_answer": item.gold_answer,
        "overlap": item.overlap,
        "done_count": item.done_count,
        "status": item.status,
    }


class GoldApi(APIView):
    """POST: make an item gold with its expected answer (and optional overlap); DELETE: clear."""

    @extend_schema_serializer(component_name="GoldInput")
    class InputSerializer(serializers.Serializer):
        answer = serializers.JSONField()
        overlap = serializers.IntegerField(required=False, min_value=1, max_value=1000)

    @extend_schema(request=InputSerializer, responses={200: GoldOutputSerializer})
    def post(self, request: Request, slug: str, item_id: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = _item_in(project, _id(item_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            item = gold_set(
                queue_item=item,
                actor=acting_user(request.user),
                answer=data.validated_data["answer"],
                overlap=data.validated_data.get("overlap"),
            )
        except Invalid as exc:
            raise ValidationError(
                {"detail": "The gold answer is invalid.", "answer": exc.errors}
            ) from exc
        item.interaction = Interaction.objects.get(pk=item.interaction_id)
        return Response(_gold_row(item))

    @extend_schema(
        responses={
            200: inline_serializer(
                name="GoldCleared",
                fields={
                    "queue_item_id": serializers.IntegerField(),
                    "is_gold": serializers.BooleanField(),
                },
            )
        }
    )
    def delete(self, request: Request, slug: str, item_id: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = gold_clear(
            queue_item=_item_in(project, _id(item_id)), actor=acting_user(request.user)
        )
        return Response({"queue_item_id": item.pk, "is_gold": item.is_gold})


class QueueItemReopenApi(APIView):
    """Put a flagged item back in the queue."""

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                name="Reopened",
                fields={
                    "queue_item_id": serializers.IntegerField(),
                    "status": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request, slug: str, item_id: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = queue_item_reopen(
            queue_item_id=_id(item_id), project=project, actor=acting_user(request.user)
        )
        return Response({"queue_item_id": item.pk, "status": item.status})


class AnnotationOutputSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "annotator",
            "kind",
            "values",
            "version",
            "is_current",
            "supersedes",
            "schema_version",
            "time_spent_ms",
            "saw_suggestion",
            "review_status",
            "review_note",
            "created_at",
        ]


class AnnotationHistoryApi(APIView):
    """Every version of an item's annotations; annotators see only their own."""

    @extend_schema(responses={200: AnnotationOutputSerializer(many=True)})
    def get(self, request: Request, slug: str, item_id: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        item = _item_in(project, _id(item_id))
        sees_all = has_capability(role=role_in(user=request.user, project=project), need="read")
        qs = annotation_history(queue_item=item, annotator=None if sees_all else request.user)
        if not sees_all and not qs.exists():
            raise Http404("No such queue item.")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response(AnnotationOutputSerializer(page, many=True).data)


class AnnotationEditApi(APIView):
    """The author edits their current label: 201 with the new version (history is kept)."""

    @extend_schema_serializer(component_name="AnnotationEditInput")
    class InputSerializer(serializers.Serializer):
        values = serializers.JSONField()
        time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)

    @extend_schema(request=InputSerializer, responses={201: AnnotationOutputSerializer})
    def post(self, request: Request, annotation_id: str) -> Response:
        own = (
            Annotation.objects.select_related("queue_item__project")
            .filter(pk=_id(annotation_id), annotator_id=request.user.pk)
            .first()
        )
        if own is None:
            raise Http404("No such annotation.")
        project_access(user=request.user, slug=own.queue_item.project.slug, need="label")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            new = annotation_edit(
                annotation_id=_id(annotation_id),
                actor=acting_user(request.user),
                values=data.validated_data["values"],
                time_spent_ms=data.validated_data.get("time_spent_ms"),
            )
        except Invalid as exc:
            raise _invalid_values(exc) from exc
        return Response(AnnotationOutputSerializer(new).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    re_path(rf"^projects/{SLUG}/queue/next/?$", QueueNextApi.as_view(), name="api-queue-next"),
    re_path(
        rf"^projects/{SLUG}/queue/progress/?$",
        QueueProgressApi.as_view(),
        name="api-queue-progress",
    ),
    re_path(
        rf"^projects/{SLUG}/queue/health/?$", QueueHealthApi.as_view(), name="api-queue-health"
    ),
    re_path(
        r"^assignments/(?P<assignment_id>\d+)/submit/?$",
        AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    re_path(
        r"^assignments/(?P<assignment_id>\d+)/skip/?$",
        AssignmentSkipApi.as_view(),
        name="api-assignment-skip",
    ),
    re_path(rf"^projects/{SLUG}/agreement/?$", AgreementApi.as_view(), name="api-agreement"),
    re_path(
        rf"^projects/{SLUG}/disagreements/?$",
        DisagreementListApi.as_view(),
        name="api-disagreements",
    ),
    re_path(
        rf"^projects/{SLUG}/items/(?P<item_id>\d+)/adjudicate/?$",
        AdjudicateApi.as_view(),
        name="api-adjudicate",
    ),
    re_path(
        rf"^projects/{SLUG}/items/(?P<item_id>\d+)/gold/?$", GoldApi.as_view(), name="api-gold"
    ),
    re_path(
        rf"^projects/{SLUG}/items/(?P<item_id>\d+)/reopen/?$",
        QueueItemReopenApi.as_view(),
        name="api-item-reopen",
    ),
    re_path(
        rf"^projects/{SLUG}/items/(?P<item_id>\d+)/annotations/?$",
        AnnotationHistoryApi.as_view(),
        name="api-annotation-history",
    ),
    re_path(rf"^projects/{SLUG}/gold/?$", GoldListApi.as_view(), name="api-gold-list"),
    re_path(
        r"^annotations/(?P<annotation_id>\d+)/edit/?$",
        AnnotationEditApi.as_view(),
        name="api-annotation-edit",
    ),
]
