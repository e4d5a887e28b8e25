"""manage.py retrain --project SLUG: train a new proxy model now and re-score the pool."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from sampling.services import scoring
from sampling.services.proxy import proxy_train


class Command(BaseCommand):
    help = "Train a proxy model from all labels of a project, then re-score its unconsidered pool."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--no-rescore", action="store_true", help="train only")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        model = proxy_train(project=project)
        if model is None:
            raise CommandError("a training of this project is already running; try again later")
        cv = model.metrics.get("cv") or {}
        self.stdout.write(
            f"proxy v{model.version} ({model.kind}) on {model.n_labels} labels: "
            + json.dumps({k: cv.get(k) for k in ("auc", "log_loss", "brier")})
        )
        if options["no_rescore"]:
            return
        after, total = 0, 0
        while ids := scoring.pool_chunk_ids(
            project=project, after_id=after, limit=scoring.chunk_size()
        ):
            total += scoring.interactions_score(project=project, interaction_ids=ids, model=model)
            after = ids[-1]
        self.stdout.write(f"re-scored {total} interactions")
