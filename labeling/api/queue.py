"""API: the annotation queue — lease the next item, submit or skip it, progress and health, and
putting a flagged item back.

Agreement and adjudication are in ``labeling.api.agreement``, gold items in ``labeling.api.gold``,
annotation history and edits in ``labeling.api.history``. Every view resolves its project through
``labeling.access.project_access``; assignments are looked up among the caller's own rows
(``labeling.selectors.assignments.own_assignment``), so someone else's id is a 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.errors import invalid_values
from labeling.api.params import url_id
from labeling.errors import DomainError, Invalid
from labeling.selectors.assignments import assignment_payload, own_assignment
from labeling.selectors.queue import annotator_stats, queue_health, queue_progress
from labeling.services.queue import (
    assignment_claim,
    assignment_skip,
    assignment_submit,
    queue_item_reopen,
)


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
    def post(self, request: Request, assignment_id: int) -> Response:
        own = own_assignment(user=request.user, assignment_id=url_id(assignment_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            annotation = assignment_submit(
                assignment_id=url_id(assignment_id),
                annotator=acting_user(request.user),
                values=data.validated_data["values"],
                time_spent_ms=data.validated_data.get("time_spent_ms"),
            )
        except Invalid as exc:
            raise invalid_values(exc) from exc
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
    def post(self, request: Request, assignment_id: int) -> Response:
        own_assignment(user=request.user, assignment_id=url_id(assignment_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = assignment_skip(
            assignment_id=url_id(assignment_id),
            annotator=acting_user(request.user),
            reason=data.validated_data.get("reason", ""),
        )
        return Response({"id": assignment.pk, "status": assignment.status})


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
    def post(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = queue_item_reopen(
            queue_item_id=url_id(item_id), project=project, actor=acting_user(request.user)
        )
        return Response({"queue_item_id": item.pk, "status": item.status})
