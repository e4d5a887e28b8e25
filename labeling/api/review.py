"""API: comments and flags on queued items, and reviewers' accept/reject decisions on labels.

- ``GET /api/projects/{slug}/items/{id}/comments`` — reviewers, engineers and admins: every
  comment of the item; annotators: their own.
- ``POST`` the same path ``{"body": "...", "flag": false}`` — an annotator on an item assigned to
  them, or a reviewer on any item: 201 with the comment.
- ``POST /api/projects/{slug}/annotations/{id}/review`` ``{"decision": "accept"|"reject",
  "note": "..."}`` — reviewers and admins; a rejection needs a note and sends the label back to
  its annotator (``queue/progress`` counts it in ``returned``, ``my-labels?returned=1`` lists it).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, has_capability, project_access, role_in
from labeling.api.params import url_id
from labeling.models import ItemComment
from labeling.selectors.queue import queue_item_in
from labeling.selectors.review import item_comments
from labeling.services.review import COMMENT_MAX, annotation_review, comment_add


class CommentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue_item_id = serializers.IntegerField()
    author = serializers.CharField(source="author.username")
    body = serializers.CharField()
    is_flag = serializers.BooleanField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def _comment_data(comment: ItemComment) -> Any:
    return CommentOutputSerializer(comment).data


class ItemCommentsApi(APIView):
    """Comments and flags on one queued item."""

    @extend_schema_serializer(component_name="ItemCommentInput")
    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=COMMENT_MAX
        )
        flag = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses={200: CommentOutputSerializer(many=True)})
    def get(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        item = queue_item_in(project, url_id(item_id))
        sees_all = has_capability(role=role_in(user=request.user, project=project), need="read")
        comments = item_comments(queue_item=item, author=None if sees_all else request.user)
        return Response(CommentOutputSerializer(comments, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CommentOutputSerializer})
    def post(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        item = queue_item_in(project, url_id(item_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comment_add(
            queue_item=item,
            author=acting_user(request.user),
            body=data.validated_data["body"],
            flag=data.validated_data["flag"],
            reviewer=has_capability(
                role=role_in(user=request.user, project=project), need="review"
            ),
        )
        return Response(_comment_data(comment), status=status.HTTP_201_CREATED)


class AnnotationReviewApi(APIView):
    """A reviewer accepts or rejects (with a note) the current version of a label."""

    @extend_schema_serializer(component_name="AnnotationReviewInput")
    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["accept", "reject"])
        note = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=COMMENT_MAX
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        review_status = serializers.CharField()
        review_note = serializers.CharField()
        reviewed_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request, slug: str, annotation_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = annotation_review(
            annotation_id=url_id(annotation_id),
            project=project,
            reviewer=acting_user(request.user),
            decision=data.validated_data["decision"],
            note=data.validated_data["note"],
        )
        return Response(self.OutputSerializer(annotation).data)
