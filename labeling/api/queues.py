"""API: named queues (admins configure them; every member may list them) and members' skill tags.

- ``GET /api/projects/{slug}/queues/`` — the queues in routing order with their backlog.
- ``POST`` the same path ``{"name", "segment": {"locale": ["de"]}, "skill": "de",
  "strategy_ids": [3], "blind": true, "active": true, "position": 0}`` — 201 (admins).
- ``PATCH`` / ``DELETE /api/projects/{slug}/queues/{id}`` — change or delete (its items go back to
  the main queue) (admins).
- ``PUT /api/projects/{slug}/members/{username}/skills`` ``{"skills": ["de", "safety"]}`` (admins).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.params import url_id
from labeling.models import Project, Queue
from labeling.selectors.queues import project_queues, queue_backlogs
from labeling.services.queues import (
    member_skills_set,
    queue_create,
    queue_delete,
    queue_update,
)


class QueueOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    position = serializers.IntegerField()
    strategy_ids = serializers.ListField(child=serializers.IntegerField())
    segment = serializers.DictField()
    skill = serializers.CharField()
    blind = serializers.BooleanField()
    active = serializers.BooleanField()
    backlog = serializers.IntegerField()
    items = serializers.IntegerField()


@extend_schema_serializer(component_name="QueueInput")
class QueueInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    position = serializers.IntegerField(required=False, min_value=0, max_value=2_147_483_647)
    strategy_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    segment = serializers.DictField(required=False)
    skill = serializers.CharField(max_length=64, required=False, allow_blank=True)
    blind = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)


def _rows(project: Project, queues: list[Queue]) -> list[dict[str, Any]]:
    counts = queue_backlogs(project=project)
    empty = {"items": 0, "backlog": 0, "done": 0}
    return [
        {
            **{f: getattr(q, f) for f in ("id", "slug", "name", "description", "position")},
            **{f: getattr(q, f) for f in ("strategy_ids", "segment", "skill", "blind", "active")},
            "backlog": counts.get(q.pk, empty)["backlog"],
            "items": counts.get(q.pk, empty)["items"],
        }
        for q in queues
    ]


class QueuesApi(APIView):
    """The project's named queues (members) and creating one (admins)."""

    @extend_schema(responses={200: QueueOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        return Response(_rows(project, list(project_queues(project=project))))

    @extend_schema(request=QueueInputSerializer, responses={201: QueueOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        data = QueueInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        queue = queue_create(
            project=project, actor=acting_user(request.user), data=dict(data.validated_data)
        )
        return Response(_rows(project, [queue])[0], status=status.HTTP_201_CREATED)


class QueueDetailApi(APIView):
    """Change or delete a named queue (admins)."""

    def _queue(self, request: Request, slug: str, queue_id: int) -> tuple[Project, Queue]:
        project = project_access(user=request.user, slug=slug, need="configure")
        return project, get_object_or_404(Queue, pk=url_id(queue_id), project=project)

    @extend_schema(request=QueueInputSerializer, responses={200: QueueOutputSerializer})
    def patch(self, request: Request, slug: str, queue_id: int) -> Response:
        project, queue = self._queue(request, slug, queue_id)
        data = QueueInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        queue = queue_update(
            queue=queue, actor=acting_user(request.user), data=dict(data.validated_data)
        )
        return Response(_rows(project, [queue])[0])

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, queue_id: int) -> Response:
        _, queue = self._queue(request, slug, queue_id)
        queue_delete(queue=queue, actor=acting_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSkillsApi(APIView):
    """Set a member's skill tags (admins): queues with a skill serve only members who have it."""

    @extend_schema_serializer(component_name="MemberSkillsInput")
    class InputSerializer(serializers.Serializer):
        skills = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
        },
    )
    def put(self, request: Request, slug: str, username: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        user = get_object_or_404(get_user_model(), username=username, memberships__project=project)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = member_skills_set(
            project=project,
            user=user,
            skills=data.validated_data["skills"],
            actor=acting_user(request.user),
        )
        return Response({"skills": membership.skills})
