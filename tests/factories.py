"""factory-boy factories: the one place tests build rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling.models import Interaction, Membership, Project, QueueItem, Role
from labeling.schema import DEFAULT_SCHEMA


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-test-12345")

    @factory.post_generation
    def _save(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"proj-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.replace("-", " ").title())
    label_schema = factory.LazyFunction(lambda: dict(DEFAULT_SCHEMA))
    segment_keys = factory.LazyFunction(lambda: ["tier", "locale"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"req-{n}")
    conversation_id = factory.Sequence(lambda n: f"conv-{n}")
    occurred_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))
    model_version = "model-a"
    messages = factory.LazyFunction(
        lambda: [{"role": "user", "content": "How do I reset my password?"}]
    )
    response = "Open Settings, choose Security, then Reset password."
    segment = factory.LazyFunction(lambda: {"tier": "free", "locale": "en"})
    metadata = factory.LazyFunction(dict)
    scores = factory.LazyFunction(dict)


class QueueItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueItem

    interaction = factory.SubFactory(InteractionFactory)
    project = factory.LazyAttribute(lambda q: q.interaction.project)
    overlap = 1
