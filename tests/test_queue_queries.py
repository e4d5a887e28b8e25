"""The statements a label costs: ``queue/next`` and ``submit`` read the project, the caller's
role, the assignment and its item once each (bench/label_profile.py shows them all)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import Project
from tests.conftest import client_for
from tests.factories import QueueItemFactory

pytestmark = pytest.mark.django_db


def _tables(queries: list[dict[str, Any]]) -> list[str]:
    """The table each statement reads or writes: a SELECT's FROM table outside any subquery (an
    ORM query or hand-written SQL alike), an UPDATE's or INSERT's target."""
    out = []
    for q in queries:
        sql = q["sql"].replace('"', " ")
        while True:  # drop parenthesised parts (subqueries, column lists), innermost first
            stripped = re.sub(r"\([^()]*\)", " ", sql)
            if stripped == sql:
                break
            sql = stripped
        words = sql.split()
        if words and words[0].upper() == "SELECT" and "FROM" in (w.upper() for w in words):
            words = words[[w.upper() for w in words].index("FROM") :]
        elif not any(w.startswith(("labeling_", "authtoken_")) for w in words):
            words = (
                q["sql"].replace('"', " ").replace("(", " ").split()
            )  # only a subquery names one
        out.append(next((w for w in words if w.startswith(("labeling_", "authtoken_"))), ""))
    return out


def test_next_and_submit_read_each_row_once(
    project: Project, member: Callable[..., Any], django_capture_on_commit_callbacks: Callable
) -> None:
    QueueItemFactory(interaction__project=project)
    client = client_for(member())
    with CaptureQueriesContext(connection) as nxt:
        body = client.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    tables = _tables(nxt.captured_queries)
    # the project with the caller's role: one query; the membership once more, locked (claim)
    assert tables.count("labeling_project") == 1
    assert tables.count("labeling_membership") == 1
    # (the follow-up tasks, run after commit, are not the request's)
    with CaptureQueriesContext(connection) as sub, django_capture_on_commit_callbacks():
        response = client.post(
            reverse("labeling_api:assignment-submit", kwargs={"assignment_id": body["id"]}),
            {"values": {"quality": 4}},
            format="json",
        )
    assert response.status_code == 201
    tables = _tables(sub.captured_queries)
    # the access check reads the assignment with the role; the service locks it with its item
    assert tables.count("labeling_assignment") == 3  # access check, lock, status update
    assert tables.count("labeling_membership") == 0  # the role came with the assignment
    assert tables.count("labeling_queueitem") == 1  # its counters (read with the lock)
    assert tables.count("labeling_webhooksubscription") == 1
