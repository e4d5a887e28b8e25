"""``manage.py judge ...``: configure, run and inspect a project's LLM judges from the shell.

    judge list --project SLUG
    judge create --project SLUG --name NAME --base-url URL --model M [--set key=value ...]
    judge update --project SLUG --name NAME --set key=value [...]
    judge pause|resume|test|status|calibrate --project SLUG --name NAME
    judge run --project SLUG --name NAME [--pool] [--retry-failed] [--all]

``--set`` values are JSON where they parse (``concurrency=8``, ``request_logprobs=true``), text
otherwise; ``--prompt-file`` reads the template from a file. The API key is never an argument:
``--set api_key_env=OPENAI_API_KEY`` names the variable the workers read it from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from labeling.models import Interaction, Project
from sampling.judges import calibration_report, execution, tasks
from sampling.judges.config import judge_create, judge_pause, judge_resume, judge_update
from sampling.judges.models import Judge
from sampling.judges.selectors import judge_status

ACTIONS = ("list", "create", "update", "pause", "resume", "test", "status", "calibrate", "run")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class Command(BaseCommand):
    help = "Configure, run and inspect LLM judges (see docs/judges.md)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", help="judge name")
        parser.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://h/v1")
        parser.add_argument("--model", help="model name")
        parser.add_argument("--prompt-file", help="read prompt_template from this file")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--pool", action="store_true", help="run: queue the unconsidered pool")
        parser.add_argument("--all", action="store_true", help="run: queue every interaction")
        parser.add_argument("--retry-failed", action="store_true", help="run: requeue failures")

    def handle(self, *args: Any, **o: Any) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {o['project']!r}.")
        action = o["action"]
        if action == "list":
            for judge in Judge.objects.filter(project=project).order_by("name"):
                primary = " primary" if judge.is_primary else ""
                reason = f" ({judge.pause_reason})" if judge.pause_reason else ""
                self.stdout.write(
                    f"{judge.name}: {judge.model} at {judge.base_url} [{judge.status}{primary}]"
                    f"{reason}"
                )
            return
        if not o["name"]:
            raise CommandError("--name is required")
        data = self._data(o)
        try:
            if action == "create":
                data = {"name": o["name"], **data}
                created = judge_create(project=project, data=data)
                self.stdout.write(
                    self.style.SUCCESS(f"created judge {created.name} (id {created.pk})")
                )
                return
            found = Judge.objects.filter(project=project, name=o["name"]).first()
            if found is None:
                raise CommandError(f"No judge named {o['name']!r} in {project.slug}.")
            judge = found
            if action == "update":
                judge_update(judge=judge, data=data)
                self.stdout.write(self.style.SUCCESS(f"updated judge {judge.name}"))
            elif action == "pause":
                judge_pause(judge=judge, reason="paused by an admin", kind="manual")
            elif action == "resume":
                judge_resume(judge=judge)
            elif action == "test":
                self._json(execution.judge_test_connection(judge=judge))
            elif action == "status":
                self._json(
                    {"status": judge.status, "pause_reason": judge.pause_reason}
                    | judge_status(judge=judge)
                )
            elif action == "calibrate":
                report = calibration_report.judge_trust(judge=judge)
                assert report is not None
                self._json({k: v for k, v in report.items() if not k.startswith("reliability")})
            elif action == "run":
                self._run(judge, o)
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
            lines = [f"  {field}: {' '.join(map(str, msgs))}" for field, msgs in detail.items()]
            raise CommandError("invalid judge configuration:\n" + "\n".join(lines)) from None

    def _data(self, o: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in o["set"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: expected KEY=VALUE")
            data[key.strip()] = _value(value)
        if o["base_url"]:
            data["base_url"] = o["base_url"]
        if o["model"]:
            data["model"] = o["model"]
        if o["prompt_file"]:
            path = Path(o["prompt_file"])
            if not path.is_file():
                raise CommandError(f"No such file: {path}")
            data["prompt_template"] = path.read_text()
        return data

    def _run(self, judge: Judge, o: dict[str, Any]) -> None:
        queued = 0
        if o["retry_failed"]:
            queued += execution.judge_retry_failed(judge=judge)
        if o["pool"]:
            ids = execution.pool_unjudged_ids(judge=judge, limit=10**7)
            queued += execution.judge_schedule(judge=judge, interaction_ids=ids)
        if o["all"]:
            ids = list(
                Interaction.objects.filter(project=judge.project).values_list("id", flat=True)
            )
            queued += execution.judge_schedule(judge=judge, interaction_ids=ids)
        self.stdout.write(f"queued {queued}; judging")
        judged = tasks.run_judge(judge.pk)
        judge.refresh_from_db()
        self.stdout.write(f"judged {judged} in this process; status {judge.status}")
        if judge.pause_reason:
            self.stdout.write(f"paused: {judge.pause_reason}")

    def _json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=str))
