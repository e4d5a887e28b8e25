"""Judge models: the configuration, its versions (hash of model + prompt + parameters), one result
per (interaction, judge version) and the daily usage that the budget counts.

Fields and constraints only; writes live in ``sampling.judges.services``. The API key is never a
field: a judge names the environment variable that holds it (``api_key_env``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Interaction, Project


class Judge(models.Model):
    class Scope(models.TextChoices):
        ALL = "all", "All new arrivals"
        FRACTION = "fraction", "A random fraction of new arrivals"
        POOL = "pool", "The unconsidered pool, before each sampling run"

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    class TemplateSyntax(models.TextChoices):
        FORMAT = "format", "str.format ({response})"
        DJANGO = "django", "Django template ({{ response }})"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judges")
    name = models.SlugField(max_length=64)
    base_url = models.URLField(max_length=500)
    model = models.CharField(max_length=200)
    # The NAME of an environment variable of the worker that holds the key; never the key itself.
    api_key_env = models.CharField(max_length=100, blank=True, default="")
    prompt_template = models.TextField()
    template_syntax = models.CharField(
        max_length=8, choices=TemplateSyntax.choices, default=TemplateSyntax.FORMAT
    )
    # The scale the rubric asks for; the stored ``judge:<name>`` score is mapped onto [0, 1].
    score_min = models.FloatField(default=1.0)
    score_max = models.FloatField(default=10.0)
    temperature = models.FloatField(default=0.0)
    max_tokens = models.PositiveIntegerField(default=256)
    timeout_s = models.FloatField(default=30.0)
    request_logprobs = models.BooleanField(default=False)
    concurrency = models.PositiveIntegerField(default=4)
    batch_size = models.PositiveIntegerField(default=64)
    max_retries = models.PositiveIntegerField(default=4)
    # 0 means no limit.
    rpm_limit = models.PositiveIntegerField(default=0)
    tpm_limit = models.PositiveIntegerField(default=0)
    daily_request_budget = models.PositiveIntegerField(default=0)
    daily_token_budget = models.PositiveIntegerField(default=0)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    fraction = models.FloatField(default=1.0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    # Why it is paused, in words an admin reads on the page ("daily request budget ... reached").
    pause_reason = models.CharField(max_length=300, blank=True, default="")
    # "manual", "budget": a budget pause lifts itself the next day (UTC).
    pause_kind = models.CharField(max_length=10, blank=True, default="")
    is_primary = models.BooleanField(default=False)
    # 1 while the judge helps; 0 once its calibrated R^2 against human labels is <= 0.
    weight = models.FloatField(default=1.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_judge_name"),
            models.UniqueConstraint(
                fields=["project"], name="one_primary_judge", condition=Q(is_primary=True)
            ),
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"

    @property
    def score_key(self) -> str:
        """The key of ``Interaction.scores`` this judge writes (and a primary judge is read by)."""
        return f"judge:{self.name}"


class JudgeVersion(models.Model):
    """What a judge was when it scored: a hash of model + prompt + parameters and their snapshot.

    Changing the prompt makes a new version; results of the old one stay, attributable.
    """

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="versions")
    hash = models.CharField(max_length=64)
    snapshot = models.JSONField(default=dict)
    # The latest calibration report against human labels (sampling.judges.calibration).
    calibration = models.JSONField(default=dict, blank=True)
    calibrated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["judge", "hash"], name="uniq_judge_version")]
        ordering = ["judge", "-created_at"]

    def __str__(self) -> str:
        return f"{self.judge_id}@{self.hash[:12]}"


class JudgeResult(models.Model):
    """One judged (or to-be-judged) interaction for one judge version.

    The unique (interaction, version) pair is the idempotency key: scheduling twice, a retried task
    or a worker killed mid-batch never stores a second score. ``pending`` rows are the work queue;
    ``claimed_at`` is the lease of the worker that took them (a stale lease is taken over).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        UNPARSEABLE = "unparseable"
        FAILED = "failed"

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="results")
    version = models.ForeignKey(JudgeVersion, on_delete=models.CASCADE, related_name="results")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="judge_results"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The score on the judge's own scale; null unless status is done (never 0 for "unparseable").
    score = models.FloatField(null=True, blank=True)
    # "json", "last_number" or "logprobs" (expected value over the score token's alternatives).
    method = models.CharField(max_length=12, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    # The start of an unparseable reply, so an admin can see why it failed to parse.
    raw_reply = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["interaction", "version"], name="uniq_judge_result_version"
            )
        ]
        indexes = [
            models.Index(
                fields=["judge", "id"],
                name="ix_judge_result_pending",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["judge", "status"], name="ix_judge_result_status"),
        ]

    def __str__(self) -> str:
        return f"{self.interaction_id}@{self.version_id}:{self.status}"


class JudgeUsage(models.Model):
    """Requests and tokens a judge used on one UTC day (what the daily budget counts)."""

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["judge", "day"], name="uniq_judge_day")]

    def __str__(self) -> str:
        return f"{self.judge_id} {self.day}: {self.requests} req"
