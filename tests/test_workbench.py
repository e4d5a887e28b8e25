"""Server-side rules behind the annotator's workbench (issue 14)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from labeling.models import Annotation, Project, QueueItem
from labeling.schema import schema_validate
from tests.conftest import client_for
from tests.factories import InteractionFactory


def test_a_pairwise_question_is_required_unless_it_says_otherwise() -> None:
    base = {
        "questions": [{"key": "preference", "type": "pairwise"}],
        "target": {"question": "preference", "good": ["a"]},
    }
    assert schema_validate(base)["questions"][0]["required"] is True
    base["questions"][0]["required"] = False
    assert schema_validate(base)["questions"][0]["required"] is False


def test_a_pairwise_item_without_the_preference_is_refused(
    project: Project, member: Callable[..., object]
) -> None:
    project.label_schema = schema_validate(
        {
            "questions": [
                {"key": "quality", "type": "binary", "required": True},
                {"key": "preference", "type": "pairwise"},
            ],
            "target": {"question": "quality", "good": [True]},
        }
    )
    project.save()
    user = member("annotator")
    QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, alt_response="Other answer."),
    )
    api = client_for(user)
    claimed = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    refused = api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": claimed["id"]}),
        {"values": {"quality": True}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["errors"]["values"]["preference"] == "this question is required"
    assert not Annotation.objects.exists()
    accepted = api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": claimed["id"]}),
        {"values": {"quality": True, "preference": "tie"}},
        format="json",
    )
    assert accepted.status_code == 201


def test_an_export_with_until_not_after_since_is_a_400(
    project: Project, api_as: Callable[..., object]
) -> None:
    from labeling.models import Export, Role

    api = api_as(Role.ENGINEER)
    for until in ("2026-11-01", "2026-11-20T00:00:00Z"):
        response = api.post(  # type: ignore[attr-defined]
            reverse("labeling_api:exports", kwargs={"slug": project.slug}),
            {"kind": "sft", "filters": {"since": "2026-11-20", "until": until}},
            format="json",
        )
        assert response.status_code == 400
        assert "is not after filters.since" in response.json()["errors"]["filters.until"]
    assert not Export.objects.exists()
    ok = api.post(  # type: ignore[attr-defined]
        reverse("labeling_api:exports", kwargs={"slug": project.slug}),
        {"kind": "sft", "filters": {"since": "2026-11-01", "until": "2026-11-20"}},
        format="json",
    )
    assert ok.status_code == 202


def test_a_403_page_logs_one_line_without_a_traceback(
    project: Project, member: Callable[..., object], capsys: Any
) -> None:
    import logging

    from django.test import Client

    from labeling.models import Role

    browser = Client()
    browser.force_login(member(Role.ANNOTATOR))
    handler = logging.getLogger().handlers[0]
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(handler.format(record) if handler.filter(record) else "")

    keep = Keep()
    logging.getLogger("django.request").addHandler(keep)
    try:
        response = browser.get(reverse("review", kwargs={"slug": project.slug}))
    finally:
        logging.getLogger("django.request").removeHandler(keep)
    assert response.status_code == 403
    assert b"Your role (annotator) cannot review in this project." in response.content
    assert any("Forbidden" in r for r in records)
    assert not any("Traceback" in r for r in records)


def test_my_labels_newest_submission_first_and_no_edit_after_adjudication(
    project: Project, member: Callable[..., object]
) -> None:
    import datetime as dt

    from django.utils import timezone

    from labeling.models import Assignment, Role
    from labeling.services.annotations import annotation_adjudicate

    user = member("annotator")
    api = client_for(user)
    for n in range(3):
        QueueItem.objects.create(
            project=project,
            interaction=InteractionFactory(project=project, external_id=f"h-{n}"),
            priority=10 - n,
        )
    ids = []
    for n in range(3):
        claimed = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
        body = {"values": {"quality": n + 1}}
        ids.append(
            api.post(
                reverse("labeling_api:assignment-submit", kwargs={"assignment_id": claimed["id"]}),
                body,
                format="json",
            ).json()["id"]
        )
    # The first label was submitted last week: "today" leaves it out, "week" keeps it.
    Assignment.objects.filter(annotations__pk=ids[0]).update(
        finished_at=timezone.now() - dt.timedelta(days=3)
    )
    url = reverse("labeling_api:my-labels", kwargs={"slug": project.slug})
    today = api.get(url, {"period": "today"}).json()["results"]
    assert [r["interaction"]["external_id"] for r in today] == ["h-2", "h-1"]
    week = api.get(url, {"period": "week"}).json()["results"]
    assert [r["annotation_id"] for r in week] == [ids[2], ids[1], ids[0]]
    # Editing h-2 does not move it: undo still walks h-2, h-1, h-0.
    edited = api.post(
        reverse("labeling_api:annotation-edit", kwargs={"annotation_id": ids[2]}),
        {"values": {"quality": 5}},
        format="json",
    )
    assert edited.status_code == 201
    rows = api.get(url).json()["results"]
    assert [r["interaction"]["external_id"] for r in rows] == ["h-2", "h-1", "h-0"]
    assert rows[0]["values"] == {"quality": 5}
    assert rows[0]["version"] == 2
    back = api.get(url, {"before": rows[0]["annotation_id"], "limit": 1}).json()["results"]
    assert back[0]["interaction"]["external_id"] == "h-1"
    assert api.get(url, {"period": "year"}).status_code == 400
    # Another annotator sees none of these.
    assert client_for(member("annotator")).get(url).json()["results"] == []

    reviewer = member(Role.REVIEWER)
    item = QueueItem.objects.get(interaction__external_id="h-1")
    annotation_adjudicate(queue_item=item, reviewer=reviewer, values={"quality": 2})
    refused = api.post(
        reverse("labeling_api:annotation-edit", kwargs={"annotation_id": ids[1]}),
        {"values": {"quality": 4}},
        format="json",
    )
    assert refused.status_code == 409
    assert "adjudicated" in refused.json()["detail"]
    row = next(r for r in api.get(url).json()["results"] if r["annotation_id"] == ids[1])
    assert (row["adjudicated"], row["editable"]) == (True, False)


def test_wilson_share_against_hand_computed_values() -> None:
    import pytest

    from labeling.selectors.quality import Share

    low, high = Share(7, 9).interval  # type: ignore[misc]
    assert (low, high) == (pytest.approx(0.4526, abs=1e-3), pytest.approx(0.9368, abs=1e-3))
    assert Share(7, 9).few
    assert not Share(7, 9).low  # too few answers to flag anyone
    assert Share(3, 20).low
    assert not Share(15, 20).low
    assert Share(0, 0).interval is None


def test_data_browser_text_search(project: Project) -> None:
    from django.http import QueryDict

    from sampling.selectors.data_browser import filters_parse, interactions_browse
    from tests.conftest import ON_POSTGRES

    InteractionFactory(project=project, external_id="a", response="Refunds take five days.")
    InteractionFactory(project=project, external_id="b", response="No refund for this order.")
    InteractionFactory(
        project=project,
        external_id="c",
        response="Reset it.",
        messages=[{"role": "user", "content": "I want a refund"}],
    )

    def found(query: str) -> set[str]:
        filters = filters_parse(QueryDict(f"q={query}"), project=project)
        return set(
            interactions_browse(project=project, filters=filters).values_list(
                "external_id", flat=True
            )
        )

    assert found("refund") >= {"b", "c"}  # the response and the conversation are searched
    if ON_POSTGRES:  # full text: words, not substrings; web search syntax
        assert found("refund") == {"b", "c"}
        assert found("refund -order") == {"c"}
        assert found('"five days"') == {"a"}
    else:  # a plain substring match
        assert found("refund") == {"a", "b", "c"}
