"""Sampling models: strategies, runs, per-item inclusion probabilities and proxy model artefacts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Interaction, Project


class SamplingStrategy(models.Model):
    """An admin-configured way to pick items for labelling (docs/sampling.md).

    Validation (weights sum to 1, random weight >= 0.05, ...) lives in sampling.services.strategies.
    """

    class Mode(models.TextChoices):
        # Poisson sampling with recorded inclusion probabilities: labels can be reweighted.
        PROBABILISTIC = "probabilistic"
        # modAL ranked batch on the top-K uncertain candidates: training data only, no pi.
        DETERMINISTIC = "deterministic"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.PROBABILISTIC)
    # {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}
    weights = models.JSONField(default=dict)
    uncertainty_measure = models.CharField(max_length=32, default="sqrt")
    batch_size = models.PositiveIntegerField(default=200)
    # {"model_versions": [...], "segment": {"tier": ["pro"]}, "since": iso, "until": iso}
    filters = models.JSONField(default=dict, blank=True)
    # {"tier": 30}: the minimum labels wanted per value of the segment key.
    segment_minimums = models.JSONField(default=dict, blank=True)
    overlap_fraction = models.FloatField(default=0.0)
    overlap_k = models.PositiveSmallIntegerField(default=2)
    holdout_fraction = models.FloatField(default=0.0)
    # A crontab expression ("0 * * * *") or null; run by Celery beat.
    schedule = models.CharField(max_length=100, null=True, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_strategy_name")
        ]
        verbose_name_plural = "sampling strategies"

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"


class ProxyModel(models.Model):
    """A trained proxy P(good | interaction): artefact file, metrics and label count.

    A row in status ``training`` is the database claim that prevents two trainings of one project
    at once (partial unique constraint).
    """

    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="proxy_models")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    kind = models.CharField(max_length=32, blank=True, default="")  # "logistic", "prior", ...
    artifact_path = models.CharField(max_length=500, blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    n_labels = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="uniq_proxy_version"),
            models.UniqueConstraint(
                fields=["project"], name="one_training_per_project", condition=Q(status="training")
            ),
        ]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project_id} proxy v{self.version}"


class SamplingRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sampling_runs")
    strategy = models.ForeignKey(
        SamplingStrategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    strategy_snapshot = models.JSONField(default=dict)
    deterministic = models.BooleanField(default=False)
    proxy_model = models.ForeignKey(
        ProxyModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    pool_size = models.PositiveIntegerField(default=0)
    expected_size = models.FloatField(default=0.0)
    selected_count = models.PositiveIntegerField(default=0)
    holdout_count = models.PositiveIntegerField(default=0)
    seed = models.BigIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class Inclusion(models.Model):
    """One row per interaction a run considered: f at sampling time, pi, selected, holdout.

    Narrow on purpose (written with COPY on PostgreSQL). The unique interaction column enforces
    "an interaction is considered by at most one run".
    """

    # No database-level foreign keys (db_constraint=False): with them PostgreSQL runs one deferred
    # referential check per row at commit, which made a 1,000,000-row run take minutes instead of
    # seconds (bench/RESULTS.md). The rows are written only by sampling.services.runs from ids it
    # read in the same transaction; deletes still cascade through the ORM. The unique interaction
    # index (the "considered at most once" guarantee) stays. ``project`` and ``run`` have no
    # b-tree index (each one costs the run's COPY ~0.1-0.7 s per 1M rows): the selected rows of a
    # run have the partial ix_inclusion_selected, the estimates read SelectedItem and
    # PopulationCell, and the scans that remain project-scoped (the dashboard's per-topic coverage,
    # repairs) have on PostgreSQL a BRIN index on (project, run), ix_inclusion_project_brin
    # (migration 0008: rows are appended run by run, so block ranges follow runs; almost free to
    # write).
    run = models.ForeignKey(
        SamplingRun,
        on_delete=models.CASCADE,
        related_name="inclusions",
        db_constraint=False,
        db_index=False,
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    interaction = models.OneToOneField(
        Interaction, on_delete=models.CASCADE, related_name="inclusion", db_constraint=False
    )
    f = models.FloatField()
    pi = models.FloatField(null=True, blank=True)  # null: deterministic mode, no estimate
    selected = models.BooleanField(default=False)
    holdout = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["run"], name="ix_inclusion_selected", condition=Q(selected=True)),
        ]

    def __str__(self) -> str:
        return f"inclusion of {self.interaction_id} in run {self.run_id}"


class SelectedItem(models.Model):
    """One row per selected item of a run, with the interaction columns the estimates group and
    filter by: the labelled side of every estimate (``sampling.selectors.labelled``) read as one
    index range of a narrow table instead of the selected Inclusion rows scattered over a table
    of every considered interaction, each joined to its wide interaction row (issue 16: ~110,000
    page reads at 10M interactions).

    A copy of the selected Inclusion rows (``f``, ``pi``; NULL ``pi`` for deterministic runs)
    with the interaction's ``model_version``, ``segment`` and ``occurred_at``, which never change
    after ingestion. Written by the sampling run in the transaction of its Inclusion rows
    (``sampling.services.population.selected_items_write``), never changed afterwards (a
    finished run's inclusions never change); deleted with its run, interaction or project (ORM
    cascades, as for Inclusion). ``population_cells_rebuild`` rebuilds a project's rows from its
    inclusions.
    """

    # No database-level foreign keys, as on Inclusion (the rows mirror Inclusion rows the same
    # transaction wrote); the interaction is the primary key: an item is selected at most once.
    interaction = models.OneToOneField(
        Interaction,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
        db_constraint=False,
    )
    run = models.ForeignKey(
        SamplingRun, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    f = models.FloatField()
    pi = models.FloatField(null=True, blank=True)
    model_version = models.CharField(max_length=200, blank=True, default="")
    segment = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "interaction"], name="ix_selitem_project")]

    def __str__(self) -> str:
        return f"selected {self.interaction_id} in run {self.run_id}"


class PopulationCell(models.Model):
    """The population side of the estimates, aggregated: one row per run x model version x
    segment (the JSON object as a whole) x day (UTC date of ``occurred_at``).

    ``n`` counts the run's considered items with a ``pi``, ``f_total`` sums their ``f``,
    ``excluded`` counts those without ``pi`` (deterministic runs). Written by the sampling run in
    the same transaction as its Inclusion rows (``sampling.services.population``), never changed
    afterwards (inclusions never change, and neither do an interaction's version, segment and
    time) except when an interaction is deleted (``sampling.receivers`` takes it out), so an
    estimate reads O(runs x cells) rows instead of every considered interaction.
    Explicit ratings do change after a run: their counts (``rated``, ``down``, ``rated_f``,
    ``rated_excluded``) are moved by the transaction that processes a rating event, under the
    project's run lock taken shared (docs/estimates.md).
    """

    run = models.ForeignKey(
        SamplingRun, on_delete=models.CASCADE, related_name="population_cells", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    model_version = models.CharField(max_length=200, blank=True, default="")
    segment = models.JSONField(default=dict, blank=True)
    day = models.DateField()
    n = models.IntegerField(default=0)
    f_total = models.FloatField(default=0.0)
    excluded = models.IntegerField(default=0)
    # Explicit feedback of the cell's items now (it changes after the run): items with a pi and a
    # rating (``rated``), of which thumbs-down (``down``), their sum of f (``rated_f``), and rated
    # items without a pi (``rated_excluded``). Kept current by the processing of rating events
    # (``sampling.services.population.population_ratings_move``, in that transaction).
    # (database defaults too: a writer that does not name them writes zeros)
    rated = models.IntegerField(default=0, db_default=0)
    down = models.IntegerField(default=0, db_default=0)
    rated_f = models.FloatField(default=0.0, db_default=0.0)
    rated_excluded = models.IntegerField(default=0, db_default=0)

    class Meta:
        indexes = [models.Index(fields=["project", "run"], name="ix_popcell_project_run")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.model_version} {self.day}: n={self.n}"


class TopicCell(models.Model):
    """The topic-cluster side of the population: per run x model version x segment x day (as
    :class:`PopulationCell`) x topic cluster, how many of the run's considered items (with or
    without ``pi``) are in that cluster (``cluster`` -1: not clustered).

    Unlike the population cells these change after the run: an interaction's cluster is rewritten
    whenever it is scored again (a retrained proxy, late feedback processed). So the run writes
    its cells from the clusters it read (``sampling.services.topic_cells``), and every later
    cluster change of a considered interaction moves one count from its old cell to its new one in
    the transaction that writes the cluster (``sampling.services.scoring.scores_write``), which
    takes the project's run lock shared so that no run reads clusters it would not count. The
    dashboard's per-topic coverage reads O(runs x cells x clusters) rows instead of every
    considered interaction joined to its topic (issue 16).
    """

    run = models.ForeignKey(
        SamplingRun, on_delete=models.CASCADE, related_name="topic_cells", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    model_version = models.CharField(max_length=200, blank=True, default="")
    segment = models.JSONField(default=dict, blank=True)
    day = models.DateField()
    cluster = models.SmallIntegerField(default=-1)
    n = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["project", "run"], name="ix_topiccell_project_run")]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "model_version", "segment", "day", "cluster"],
                name="uq_topiccell_key",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.model_version} {self.day} cluster {self.cluster}: {self.n}"


class PoolWatermark(models.Model):
    """Where a project's pool starts: every interaction of the project with ``id <= floor`` has an
    Inclusion row (was considered by a run), so a run reads the pool as an id range above it
    instead of an anti-join of every interaction against every inclusion (issue 16).

    Kept by the runs of the project (``sampling.services.runs``), under the project's advisory
    lock and in the run's transaction. ``candidate`` is the largest id the last run over the
    whole pool (no filters) read, at ``candidate_seen_at`` (database clock, just after its read);
    it becomes the floor at a later such run once every transaction that was open at that moment
    has ended (a transaction still open could commit a smaller id the read did not see).
    Deleting a run (its inclusions go with it) deletes the project's watermark, so the next run
    reads everything.
    """

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    floor = models.BigIntegerField(default=0)
    candidate = models.BigIntegerField(default=0)
    candidate_seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"project {self.project_id}: floor {self.floor}"


class InteractionTopic(models.Model):
    """The topic cluster of an interaction (MiniBatchKMeans of the proxy that scored it).

    A narrow side table written at scoring time (upsert), read by sampling runs for coverage: it
    keeps the wide interaction rows out of the clustering and the clustering out of labeling.
    """

    interaction = models.OneToOneField(
        Interaction, on_delete=models.CASCADE, primary_key=True, related_name="topic"
    )
    cluster = models.SmallIntegerField()
    proxy_version = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.interaction_id}:{self.cluster}"


class AlertRule(models.Model):
    """Which confirmed regressions of a project raise an alert (docs/estimates.md, "Alerts").

    Empty ``model_versions`` watches every version but the baseline; empty ``baseline`` compares
    with the version of largest population; ``segment_key`` monitors per value of that segment
    (``segment_values`` restricts the values; empty: all) and otherwise whole versions. An alert
    fires when the confidence sequence of the difference lies wholly below ``-min_effect``.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    model_versions = models.JSONField(default=list, blank=True)
    baseline = models.CharField(max_length=200, blank=True, default="")
    segment_key = models.CharField(max_length=100, blank=True, default="")
    segment_values = models.JSONField(default=list, blank=True)
    min_effect = models.FloatField(default=0.0)
    alpha = models.FloatField(default=0.05)
    # Addresses that get the email; empty: the project's admins with an email address.
    emails = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uq_alertrule_project_name")
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"


class Alert(models.Model):
    """A confirmed regression found by an :class:`AlertRule`; one per regression while it holds.

    ``key`` names the comparison (version, baseline, segment); at most one alert per rule and
    key is open (``resolved_at`` null), so evaluating the rules again never duplicates it.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=500)
    model_version = models.CharField(max_length=200)
    baseline = models.CharField(max_length=200)
    segment = models.JSONField(default=dict, blank=True)
    difference = models.FloatField()
    cs_low = models.FloatField()
    cs_high = models.FloatField()
    confirmed_on = models.DateField(null=True, blank=True)
    sentence = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_to = models.JSONField(default=list, blank=True)
    webhook_deliveries = models.IntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "key"],
                condition=Q(resolved_at__isnull=True),
                name="uq_alert_open_per_rule_key",
            )
        ]
        indexes = [models.Index(fields=["project", "resolved_at"], name="ix_alert_project_open")]

    def __str__(self) -> str:
        return f"alert {self.pk}: {self.sentence}"
