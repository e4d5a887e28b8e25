"""Django admin for sampling strategies, runs, proxy models and inclusions.

Strategies are validated by the same ``strategy_validate`` as the API and the configuration
pages, so the admin cannot save a strategy the sampler would reject (e.g. a random weight < 0.05).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from labeling.errors import Invalid
from sampling import models
from sampling.services.strategies import FIELDS, strategy_validate


class SamplingStrategyForm(forms.ModelForm):
    class Meta:
        model = models.SamplingStrategy
        fields = ("project", *FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        project = cleaned.get("project")
        if project is None:
            return cleaned
        data = {field: cleaned.get(field) for field in FIELDS if field in cleaned}
        try:
            normalised = strategy_validate(
                data=data, project=project, instance=self.instance if self.instance.pk else None
            )
        except Invalid as exc:
            for location, messages in exc.errors.items():
                field = location.split(".")[0]
                text = "; ".join(map(str, messages if isinstance(messages, list) else [messages]))
                if field in self.fields:
                    self.add_error(field, f"{location}: {text}")
                else:
                    self.add_error(None, f"{location}: {text}")
            return cleaned
        cleaned.update(normalised)
        return cleaned


@admin.register(models.SamplingStrategy)
class SamplingStrategyAdmin(admin.ModelAdmin):
    form = SamplingStrategyForm
    list_display = ("name", "project", "mode", "batch_size", "schedule", "active")
    list_filter = ("project", "active", "mode")


@admin.register(models.SamplingRun)
class SamplingRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "strategy",
        "status",
        "pool_size",
        "expected_size",
        "selected_count",
        "holdout_count",
        "created_at",
    )
    list_filter = ("status", "project", "deterministic")
    readonly_fields = [f.name for f in models.SamplingRun._meta.fields]


@admin.register(models.ProxyModel)
class ProxyModelAdmin(admin.ModelAdmin):
    list_display = ("project", "version", "status", "kind", "n_labels", "created_at", "finished_at")
    list_filter = ("project", "status", "kind")
    readonly_fields = [f.name for f in models.ProxyModel._meta.fields]


@admin.register(models.Inclusion)
class InclusionAdmin(admin.ModelAdmin):
    """Read-only: inclusion probabilities are the record the estimates rest on (and the run's
    selected items and population cells are derived from them; a run is deleted as a whole).

    An inclusion goes only with its interaction or its run: deleting a considered interaction in
    the admin (a privacy request) lists its inclusions and takes them with it, and
    ``sampling.receivers`` moves the run's cells in the same transaction.
    """

    list_display = ("interaction_id", "run_id", "f", "pi", "selected", "holdout")
    list_filter = ("selected", "holdout")
    raw_id_fields = ("run", "project", "interaction")
    show_full_result_count = False

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        """Never from this model's own pages; as the cascade of deleting an interaction or a run,
        by the user's model permission (a superuser has it)."""
        match = getattr(request, "resolver_match", None)
        if match is None or (match.url_name or "").startswith("sampling_inclusion_"):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(models.AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("project", "name", "baseline", "segment_key", "min_effect", "alpha", "active")
    list_filter = ("project", "active")


@admin.register(models.Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "project",
        "model_version",
        "baseline",
        "difference",
        "created_at",
        "resolved_at",
    )
    list_filter = ("project",)
    readonly_fields = [f.name for f in models.Alert._meta.fields]
