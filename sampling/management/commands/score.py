"""manage.py score --project SLUG [--all]: score unscored interactions (or all) in this process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Interaction, Project
from sampling.services import scoring


class Command(BaseCommand):
    help = "Score a project's unscored interactions with its current proxy (--all: every one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--all", action="store_true", help="re-score scored ones too")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        step = scoring.chunk_size()
        total = 0
        if options["all"]:
            after = 0
            qs = Interaction.objects.filter(project=project).order_by("id")
            while ids := list(qs.filter(id__gt=after).values_list("id", flat=True)[:step]):
                total += scoring.interactions_score(project=project, interaction_ids=ids)
                after = ids[-1]
        else:
            while ids := scoring.unscored_ids(project=project, limit=step):
                total += scoring.interactions_score(project=project, interaction_ids=ids)
        self.stdout.write(f"scored {total} interactions")
