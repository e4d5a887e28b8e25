"""Labeling models: projects and roles, interactions and their events, queues, annotations, exports.

Fields, constraints and simple properties only; writes live in ``labeling.services``, reads in
``labeling.selectors``. ``labeling`` never imports ``sampling``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ENGINEER = "engineer", "Engineer"
    ADMIN = "admin", "Admin"


# Higher roles include the rights of lower ones, except that only annotators, reviewers and admins
# label (engineers read data and export). See labeling.access for the one place that checks roles.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.ENGINEER: 3, Role.ADMIN: 4}


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The current label schema (see labeling.schema for the format; it includes "target").
    label_schema = models.JSONField(default=dict)
    schema_version = models.PositiveIntegerField(default=1)
    segment_keys = models.JSONField(default=list, blank=True)
    custom_event_types = models.JSONField(default=list, blank=True)
    # The name of one entry of Interaction.scores that the proxy calibrates as its primary judge.
    primary_judge = models.CharField(max_length=100, blank=True)
    guidelines = models.TextField(blank=True)
    lease_seconds = models.PositiveIntegerField(default=600)
    max_skips = models.PositiveIntegerField(default=3)
    gold_rate = models.FloatField(default=0.0)
    retrain_every = models.PositiveIntegerField(default=50)
    redact_pii = models.BooleanField(default=False)
    # Show annotators the primary judge's score as a suggestion (off by default: anchoring bias,
    # docs/labeling.md "Suggestions"). Every annotation records whether one was shown.
    show_suggestions = models.BooleanField(default=False)
    # OTLP traces: span or resource attribute name -> segment key (docs/otlp.md).
    otlp_segment_attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def target(self) -> dict[str, Any]:
        """The target question and what counts as good.

        E.g. ``{"question": "quality", "good": [4, 5]}``.
        """
        return dict(self.label_schema.get("target") or {})


class LabelSchemaVersion(models.Model):
    """Every schema a project has had; annotations point at the version they were made under."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schema_versions")
    version = models.PositiveIntegerField()
    schema = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="uniq_schema_version")
        ]
        ordering = ["project", "version"]

    def __str__(self) -> str:
        return f"{self.project_id} schema v{self.version}"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # Skill tags (e.g. ["de", "safety"]): a named queue with a skill serves only members having it.
    skills = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.project_id}:{self.role}"


class IngestToken(models.Model):
    """A project-scoped token that can only ingest. Only the sha256 of the key is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Interaction(models.Model):
    # No index of its own: every (project_id, ...) index below serves project_id lookups.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="interactions", db_index=False
    )
    external_id = models.CharField(max_length=200)
    conversation_id = models.CharField(max_length=200, blank=True, default="")
    occurred_at = models.DateTimeField()
    model_version = models.CharField(max_length=200, blank=True, default="")
    messages = models.JSONField(default=list)
    response = models.TextField()
    alt_response = models.TextField(blank=True, default="")
    alt_model_version = models.CharField(max_length=200, blank=True, default="")
    segment = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    # Signal aggregates, recomputed from Event rows by labeling.services.processing (never
    # incremented in place, so they cannot drift):
    # {"copy": 1, "regenerate": 0, "edit_ratio": 0.4, ...}.
    signals = models.JSONField(default=dict, blank=True)
    # +1 thumbs up, -1 thumbs down (the latest explicit rating), null: no explicit feedback.
    explicit_rating = models.SmallIntegerField(null=True, blank=True)
    # Proxy quality score P(good) and the proxy model version that produced it (null: prior).
    proxy_score = models.FloatField(null=True, blank=True)
    proxy_version = models.PositiveIntegerField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    # Follow-up work (late events attached, aggregates, scoring) done; null: the sweep picks it up.
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="uniq_interaction_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["project", "occurred_at"], name="ix_inter_proj_time"),
            models.Index(fields=["project", "model_version"], name="ix_inter_proj_model"),
            models.Index(fields=["project", "conversation_id"], name="ix_inter_proj_conv"),
            models.Index(
                fields=["project", "id"],
                name="ix_inter_unprocessed",
                condition=Q(processed_at__isnull=True),
            ),
            # The few interactions with explicit feedback: the estimates read their ratings
            # beside the population aggregates (sampling.selectors.estimates).
            models.Index(
                fields=["project", "occurred_at"],
                name="ix_inter_proj_rated",
                condition=Q(explicit_rating__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.external_id}"


class EventType(models.TextChoices):
    THUMBS_UP = "thumbs_up"
    THUMBS_DOWN = "thumbs_down"
    COPY = "copy"
    REGENERATE = "regenerate"
    EDIT = "edit"  # value: edit ratio 0..1
    ABANDON = "abandon"
    FOLLOW_UP = "follow_up"
    DWELL_MS = "dwell_ms"  # value: milliseconds
    SHARE = "share"
    OUTCOME = "outcome"  # name + value, e.g. ticket_resolved = 1
    SCORE = "score"  # name + value: a judge score computed later


BUILTIN_EVENT_TYPES = frozenset(EventType.values)


class Event(models.Model):
    """An implicit or explicit signal. Kept even when its interaction has not arrived yet."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    interaction = models.ForeignKey(
        Interaction, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    external_id = models.CharField(max_length=200)  # the interaction's external_id
    # Optional client-supplied id: a retried event with the same id is stored once.
    event_id = models.CharField(max_length=200, null=True, blank=True)
    type = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "event_id"],
                name="uniq_event_id",
                condition=Q(event_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(
                fields=["project", "external_id"],
                name="ix_event_orphans",
                condition=Q(interaction__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} on {self.external_id}"


class Queue(models.Model):
    """A named queue of a project ("safety review", "German"); items not routed to one are in the
    project's main queue (``QueueItem.queue`` null). Rules: labeling.services.queues."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64)
    description = models.TextField(blank=True, default="")
    # Routing order: a new item goes to the first active queue (lowest position) that takes it.
    position = models.PositiveIntegerField(default=0)
    # Fed by these sampling strategies (plain ids: labeling does not import sampling); empty: any
    # strategy and deliberate batches.
    strategy_ids = models.JSONField(default=list, blank=True)
    # {"locale": ["de", "at"]}: the interaction's segment must have one of the values for every key.
    segment = models.JSONField(default=dict, blank=True)
    # Only members with this skill tag label the queue (blank: every labelling member).
    skill = models.CharField(max_length=64, blank=True, default="")
    # Blind (default): annotators never see earlier answers; open: later annotators see them.
    blind = models.BooleanField(default=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="uniq_queue_slug"),
            models.UniqueConstraint(fields=["project", "name"], name="uniq_queue_name"),
        ]
        ordering = ["project", "position", "id"]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.slug}"


class QueueItem(models.Model):
    """A selected interaction waiting for ``overlap`` annotations.

    ``done_count`` and ``leased_count`` are changed only inside labeling.services.queue while the
    row is locked, so they always equal the counts of the assignment rows.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        DONE = "done"
        FLAGGED = "flagged"

    # Served by uniq_queue_item (project_id, interaction_id).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="queue_items", db_index=False
    )
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="queue_items"
    )
    # The sampling run that selected it (a plain id: labeling does not import sampling).
    sampling_run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The named queue it was routed to; null: the project's main queue.
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    overlap = models.PositiveSmallIntegerField(default=1)
    priority = models.FloatField(default=0.0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    done_count = models.PositiveSmallIntegerField(default=0)
    leased_count = models.PositiveSmallIntegerField(default=0)
    skip_count = models.PositiveSmallIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    holdout = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "interaction"], name="uniq_queue_item"),
            models.CheckConstraint(
                condition=Q(done_count__lte=models.F("overlap")), name="queue_done_le_overlap"
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "is_gold", "-priority", "id"],
                name="ix_queue_open",
                condition=Q(status="open"),
            ),
        ]

    def __str__(self) -> str:
        return f"queue item {self.pk} ({self.status})"


class Assignment(models.Model):
    class Status(models.TextChoices):
        LEASED = "leased"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    # Served by uniq_assignment (queue_item_id, annotator_id) and ix_assignment_annotator.
    queue_item = models.ForeignKey(
        QueueItem, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [
            # No annotator gets the same item twice.
            models.UniqueConstraint(fields=["queue_item", "annotator"], name="uniq_assignment")
        ]
        indexes = [
            models.Index(
                fields=["lease_expires_at"],
                name="ix_assignment_leased",
                condition=Q(status="leased"),
            ),
            models.Index(fields=["annotator", "status"], name="ix_assignment_annotator"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


class ReviewStatus(models.TextChoices):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Annotation(models.Model):
    """Submitted values.

    An edit makes a new row (version + 1) and clears ``is_current`` on the old one.
    """

    class Kind(models.TextChoices):
        LABEL = "label"
        ADJUDICATION = "adjudication"

    queue_item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="annotations")
    # Served by ix_annotation_current (interaction_id, is_current).
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    # Served by ix_annotation_by_user (annotator_id, created_at).
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="annotations",
        db_index=False,
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LABEL)
    values = models.JSONField()
    schema_version = models.PositiveIntegerField()
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="superseded_by"
    )
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    # The annotator was shown a suggestion (the primary judge's score) with this item.
    saw_suggestion = models.BooleanField(default=False)
    # A reviewer's decision on this version (labeling.services.review): accepted, or rejected with
    # a note, which sends the label back to its annotator until they save a new version.
    review_status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, blank=True, default=""
    )
    review_note = models.TextField(blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_annotations",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["queue_item", "annotator", "kind"],
                name="uniq_current_annotation",
                condition=Q(is_current=True),
            )
        ]
        indexes = [
            models.Index(fields=["interaction", "is_current"], name="ix_annotation_current"),
            models.Index(fields=["annotator", "created_at"], name="ix_annotation_by_user"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} v{self.version}"


class ItemComment(models.Model):
    """A note on a queued item by an annotator or a reviewer; a flag asks a reviewer to look.

    Reviewers see every comment (the review page); an annotator sees their own.
    """

    queue_item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="item_comments"
    )
    body = models.TextField(blank=True, default="")
    is_flag = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_comments",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["queue_item"], name="ix_comment_open_flag", condition=Q(is_flag=True)
            ),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{'flag' if self.is_flag else 'comment'} on {self.queue_item_id}"


class AuditLog(models.Model):
    """Who changed what: label edits, adjudications, role and token changes."""

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_log"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"


class Export(models.Model):
    """A versioned snapshot of a dataset (training kinds here; ``eval`` rows come from sampling)."""

    class Kind(models.TextChoices):
        SFT = "sft"
        PREFERENCE = "preference"
        CLASSIFICATION = "classification"
        EVAL = "eval"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    filters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0)
    rows = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    schema_version = models.PositiveIntegerField(default=1)
    manifest = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched with every progress update: a "running" export whose heartbeat is older than
    # settings.EXPORT_STALE_SECONDS belongs to a dead worker and may be claimed again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.kind}, {self.status})"


class WebhookEvent(models.TextChoices):
    """What a webhook subscription may listen to (docs/webhooks.md describes each payload)."""

    LABEL_SUBMITTED = "label.submitted", "label.submitted"
    ITEM_COMPLETED = "item.completed", "item.completed"
    SAMPLING_RUN_DONE = "sampling_run.done", "sampling_run.done"
    EXPORT_READY = "export.ready", "export.ready"
    REGRESSION_DETECTED = "regression.detected", "regression.detected"


# Sent only by the "send test" button; no subscription lists it.
WEBHOOK_TEST_EVENT = "webhook.test"


class WebhookSubscription(models.Model):
    """A URL of a project that receives signed POSTs for some events.

    ``secret`` signs every delivery (HMAC-SHA256); it is shown once when created or rotated.
    ``consecutive_failures`` counts failed attempts since the last success; past the limits in
    the settings the subscription is switched off with ``disabled_reason`` saying why.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True, default="")
    secret = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} -> {self.url}"


class WebhookDelivery(models.Model):
    """One event for one subscription: an outbox row written in the event's own transaction.

    Sent (and re-sent) from this row only, so a broker outage delays deliveries but loses none.
    ``uid`` is the same on every attempt: receivers deduplicate on it (at-least-once). ``payload``
    is the whole JSON body sent (the envelope with the event's data).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after the last attempt

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=64)
    # The id receivers deduplicate on: unique per delivery, the same on every attempt.
    uid = models.CharField(max_length=64, unique=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A worker holds the row while it sends; a claim older than this was lost with its worker.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                name="ix_webhook_due",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["subscription", "-id"], name="ix_webhook_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} {self.event} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what the receiver answered and how long it took."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField()
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="uniq_webhook_attempt")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
