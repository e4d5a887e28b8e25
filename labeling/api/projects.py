"""API: projects, members and ingestion tokens, so a script can set up a project end to end.

Ingestion tokens are refused here (403): they can only ingest. Lookups go through
``labeling.access`` (outsiders get 404).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import IngestClient, can_create_projects, project_access
from labeling.models import IngestToken, Role
from labeling.selectors.projects import (
    ingest_tokens_list,
    project_for_member,
    project_members,
    project_role,
    projects_visible,
)
from labeling.services.projects import (
    ingest_token_create,
    ingest_token_revoke,
    membership_add,
    membership_remove,
    project_create,
    project_update,
)


def actor(request: Request) -> User:
    """The authenticated person behind a request (HumanUserOnly has already checked)."""
    return cast(User, request.user)


class HumanUserOnly(permissions.BasePermission):
    """Authenticated people only: an ingestion token gets 403 outside the ingestion endpoints."""

    message = "An ingestion token can only ingest."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, IngestClient):
            return False
        return bool(user and user.is_authenticated)


class ProjectOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    label_schema = serializers.JSONField()
    schema_version = serializers.IntegerField()
    segment_keys = serializers.JSONField()
    custom_event_types = serializers.JSONField()
    primary_judge = serializers.CharField()
    guidelines = serializers.CharField()
    lease_seconds = serializers.IntegerField()
    max_skips = serializers.IntegerField()
    gold_rate = serializers.FloatField()
    retrain_every = serializers.IntegerField()
    redact_pii = serializers.BooleanField()
    show_suggestions = serializers.BooleanField()
    otlp_segment_attributes = serializers.JSONField()
    created_at = serializers.DateTimeField()
    role = serializers.SerializerMethodField()

    def get_role(self, project: Any) -> str | None:
        return project_role(user=self.context["user"], project=project)


class ProjectsApi(APIView):
    """``GET``: the caller's projects (paginated). ``POST``: create one (staff users only; the
    creator becomes its admin)."""

    permission_classes = [HumanUserOnly]

    @extend_schema_serializer(component_name="ProjectCreateInput")
    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=64)
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, default="", allow_blank=True)
        label_schema = serializers.JSONField(required=False, default=None)
        segment_keys = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, default=list
        )
        custom_event_types = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, default=list
        )
        primary_judge = serializers.CharField(
            max_length=100, required=False, default="", allow_blank=True
        )
        guidelines = serializers.CharField(required=False, default="", allow_blank=True)
        redact_pii = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses=ProjectOutputSerializer(many=True), summary="List your projects")
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(projects_visible(user=request.user), request, view=self)
        data = ProjectOutputSerializer(page, many=True, context={"user": request.user}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request=InputSerializer,
        responses={201: ProjectOutputSerializer},
        summary="Create a project",
    )
    def post(self, request: Request) -> Response:
        if not can_create_projects(request.user):
            raise PermissionDenied("Only staff users can create projects.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_create(created_by=actor(request), **serializer.validated_data)
        data = ProjectOutputSerializer(project, context={"user": request.user}).data
        return Response(data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """``GET``: a project you are a member of. ``PATCH``: configure it (admins)."""

    permission_classes = [HumanUserOnly]

    @extend_schema_serializer(component_name="ProjectUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        label_schema = serializers.JSONField(required=False)
        segment_keys = serializers.ListField(child=serializers.CharField(), required=False)
        custom_event_types = serializers.ListField(child=serializers.CharField(), required=False)
        primary_judge = serializers.CharField(max_length=100, required=False, allow_blank=True)
        guidelines = serializers.CharField(required=False, allow_blank=True)
        lease_seconds = serializers.IntegerField(min_value=30, max_value=86400, required=False)
        max_skips = serializers.IntegerField(min_value=1, max_value=100, required=False)
        gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
        retrain_every = serializers.IntegerField(min_value=1, required=False)
        redact_pii = serializers.BooleanField(required=False)
        show_suggestions = serializers.BooleanField(required=False)
        otlp_segment_attributes = serializers.JSONField(required=False)

    @extend_schema(responses=ProjectOutputSerializer, summary="Get a project")
    def get(self, request: Request, slug: str) -> Response:
        project = project_for_member(user=request.user, slug=slug)
        return Response(ProjectOutputSerializer(project, context={"user": request.user}).data)

    @extend_schema(
        request=InputSerializer, responses=ProjectOutputSerializer, summary="Configure a project"
    )
    def patch(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        unknown = sorted(set(request.data) - set(self.InputSerializer().fields))
        if unknown:
            raise serializers.ValidationError(dict.fromkeys(unknown, "cannot be changed"))
        project = project_update(
            project=project, updated_by=actor(request), data=dict(serializer.validated_data)
        )
        return Response(ProjectOutputSerializer(project, context={"user": request.user}).data)


class MemberOutputSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MembersApi(APIView):
    """``GET``: the members (admins). ``POST``: add an existing user with a role, or change the
    role of a member (admins)."""

    permission_classes = [HumanUserOnly]

    @extend_schema_serializer(component_name="MemberAddInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=MemberOutputSerializer(many=True), summary="List members")
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(project_members(project=project), request, view=self)
        return paginator.get_paginated_response(MemberOutputSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: MemberOutputSerializer}, summary="Add a member"
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = (
            get_user_model().objects.filter(username=serializer.validated_data["username"]).first()
        )
        if user is None:
            raise serializers.ValidationError({"username": "no such user"})
        membership = membership_add(
            project=project,
            user=user,
            role=serializer.validated_data["role"],
            added_by=actor(request),
        )
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    """``DELETE``: remove a member (admins; the last admin stays)."""

    permission_classes = [HumanUserOnly]

    @extend_schema(responses={204: None}, summary="Remove a member")
    def delete(self, request: Request, slug: str, username: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        user = get_object_or_404(get_user_model(), username=username, memberships__project=project)
        membership_remove(project=project, user=user, removed_by=actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)


class IngestTokensApi(APIView):
    """``GET``: the project's ingestion tokens (never their keys). ``POST``: create one; the key is
    in this answer only. Engineers and admins."""

    permission_classes = [HumanUserOnly]

    @extend_schema_serializer(component_name="IngestTokenCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema_serializer(component_name="IngestTokenCreated")
    class CreatedSerializer(TokenOutputSerializer):
        key = serializers.CharField()

    @extend_schema(responses=TokenOutputSerializer(many=True), summary="List ingestion tokens")
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        paginator = LimitOffsetPagination()
        tokens = ingest_tokens_list(project=project).select_related("created_by")
        page = paginator.paginate_queryset(tokens, request, view=self)
        return paginator.get_paginated_response(TokenOutputSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedSerializer},
        summary="Create an ingestion token (the key is shown once)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = ingest_token_create(
            project=project, name=serializer.validated_data["name"], created_by=actor(request)
        )
        data = dict(TokenOutputSerializer(token).data)
        data["key"] = key
        return Response(data, status=status.HTTP_201_CREATED)


class IngestTokenDetailApi(APIView):
    """``DELETE``: revoke an ingestion token (it stops working at once)."""

    permission_classes = [HumanUserOnly]

    @extend_schema(responses={204: None}, summary="Revoke an ingestion token")
    def delete(self, request: Request, slug: str, token_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        token = get_object_or_404(IngestToken, pk=token_id, project=project)
        ingest_token_revoke(token=token, revoked_by=actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
