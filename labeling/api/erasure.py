"""``POST /api/projects/{slug}/interactions/erase/``: forget interactions by their external ids
(a privacy request). Project admins only; what goes is in :mod:`labeling.services.erasure`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import project_access
from labeling.api.projects import HumanUserOnly, actor
from labeling.services.erasure import MAX_IDS, interactions_erase


class InteractionsEraseApi(APIView):
    """Delete the project's interactions with these external ids, with their labels, queue items,
    events and sampling records, and the events of ids whose interaction never arrived. The runs'
    aggregates move at once, so estimates afterwards leave them out. One transaction; audited."""

    permission_classes = [HumanUserOnly]

    @extend_schema_serializer(component_name="EraseInput")
    class InputSerializer(serializers.Serializer):
        external_ids = serializers.ListField(
            child=serializers.CharField(max_length=200, trim_whitespace=False),
            allow_empty=False,
            max_length=MAX_IDS,
        )

    @extend_schema_serializer(component_name="EraseResult")
    class OutputSerializer(serializers.Serializer):
        erased = serializers.IntegerField()
        labels_erased = serializers.IntegerField()
        events_erased = serializers.IntegerField()
        not_found = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        summary="Erase interactions by external id (admins)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = interactions_erase(
            project=project, external_ids=data.validated_data["external_ids"], actor=actor(request)
        )
        return Response(self.OutputSerializer(result.as_dict()).data)
