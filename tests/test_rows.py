"""labeling.rows: a row read by hand-written SQL becomes the same instance the ORM would load —
every field, JSON, datetimes, booleans, NULLs and LEFT JOIN misses included (on SQLite and, in CI,
on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from labeling.models import Assignment, Interaction, Project, Queue, QueueItem
from labeling.rows import row_reader
from tests.factories import InteractionFactory, QueueItemFactory, UserFactory

pytestmark = pytest.mark.django_db


def _fields(obj: Model) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def _read(model: type[Model], pk: Any) -> Model:
    reader = row_reader(model, "x")
    with connection.cursor() as cursor:
        pk_column = connection.ops.quote_name(str(model._meta.pk.column))
        cursor.execute(
            f"SELECT {reader.columns} FROM {reader.table} x WHERE x.{pk_column} = %s", [pk]
        )
        row = cursor.fetchone()
    return reader.read(row)


def test_every_field_reads_as_through_the_orm() -> None:
    interaction = InteractionFactory(
        messages=[{"role": "user", "content": "Grüße — how?"}],
        segment={"tier": "pro", "locale": "de", "n": 3, "nested": {"a": [1, None, True]}},
        metadata={},
        scores={"judge": 0.25},
        alt_response="",
    )
    project = interaction.project
    queue = Queue.objects.create(
        project=project, name="German", slug="de", segment={"locale": ["de"]}
    )
    item = QueueItemFactory(
        interaction=interaction,
        queue=queue,
        is_gold=True,
        gold_answer={"quality": 5},
        priority=-1.5,
    )
    user = UserFactory()
    now = timezone.now().replace(microsecond=0)  # also a datetime whose text has no fraction
    assignment = Assignment.objects.create(
        queue_item=item,
        annotator=user,
        leased_at=now,
        lease_expires_at=now + dt.timedelta(seconds=1),
    )
    token = Token.objects.create(user=user)
    for obj in (project, interaction, queue, item, assignment, token, user):
        fresh = type(obj).objects.get(pk=obj.pk)
        read = _read(type(obj), obj.pk)
        assert _fields(read) == _fields(fresh), type(obj).__name__
        assert read._state.adding is False
        assert read._state.db == "default"
    # a nullable datetime that is NULL, a boolean that is False
    assert _read(Assignment, assignment.pk).finished_at is None
    assert _read(QueueItem, item.pk).holdout is False


def test_a_left_join_miss_is_none() -> None:
    item = QueueItemFactory()  # the main queue: no named queue
    item_r, queue_r = row_reader(QueueItem, "qi"), row_reader(Queue, "q")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {item_r.columns}, {queue_r.columns} FROM {item_r.table} qi "
            f"LEFT JOIN {queue_r.table} q ON q.id = qi.queue_id WHERE qi.id = %s",
            [item.pk],
        )
        row = cursor.fetchone()
    assert item_r.read(row).pk == item.pk
    assert queue_r.read_nullable(row, item_r.width) is None


def test_instances_save_like_orm_loaded_ones() -> None:
    """An instance from a reader is a normal loaded instance: saving it updates its row."""
    project = Project.objects.create(slug="rows", name="Rows")
    read = _read(Project, project.pk)
    read.name = "Renamed"
    read.save(update_fields=["name"])
    assert Project.objects.get(pk=project.pk).name == "Renamed"
    assert Project.objects.count() == 1
    assert _read(get_user_model(), UserFactory().pk).is_active is True
    assert _read(Interaction, InteractionFactory().pk).alt_model_version in ("", None)
