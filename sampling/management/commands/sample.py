"""manage.py sample --project SLUG --strategy NAME: run one sampling run now, in this process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from sampling.models import SamplingStrategy
from sampling.services.runs import sampling_run_create, sampling_run_execute


class Command(BaseCommand):
    help = "Run a sampling run of a project's strategy now and print what it selected."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--strategy", default="default", help="strategy name (default: default)"
        )
        parser.add_argument("--seed", type=int, default=None, help="fix the run's random seed")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        strategy = SamplingStrategy.objects.filter(
            project=project, name=options["strategy"]
        ).first()
        if strategy is None:
            names = ", ".join(
                SamplingStrategy.objects.filter(project=project).values_list("name", flat=True)
            )
            raise CommandError(
                f"no strategy {options['strategy']!r} in {project.slug} (have: {names or 'none'})"
            )
        run = sampling_run_create(project=project, strategy=strategy)
        if options["seed"] is not None:
            run.seed = options["seed"]
            run.save(update_fields=["seed"])
        done = sampling_run_execute(run_id=run.pk)
        if done is None or done.status != done.Status.DONE:
            raise CommandError(f"run failed: {done.error if done else 'vanished'}")
        run = done
        timings = run.timings
        self.stdout.write(
            f"run {run.pk}: pool {run.pool_size}, expected {run.expected_size:.1f}, "
            f"selected {run.selected_count} (holdout {run.holdout_count}), "
            f"proxy {run.proxy_model.version if run.proxy_model else 'prior'}, "
            f"{timings.get('total_s', 0):.2f}s"
        )
