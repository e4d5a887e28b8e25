"""HTML forms of the sampling configuration pages: they parse what a person typed into the API's
shapes.

The forms only turn text into the same dicts the API accepts (``strategy_data``) and report parse
errors in place; the rules (weights sum to 1, random weight > 0 ...) are checked by the services
every caller shares, and their errors are mapped back onto the fields with
:func:`labeling.forms.attach_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

UNCERTAINTY_MEASURES = (
    ("sqrt", "sqrt(f(1-f)) — lowest estimator variance (default)"),
    ("least_confidence", "least confidence (modAL)"),
    ("margin", "margin (modAL)"),
    ("entropy", "entropy (modAL)"),
)

_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*(.*?)\s*$")


def parse_key_lines(text: str, *, numbers: bool) -> dict[str, Any]:
    """Parse ``key: a, b`` lines (or ``key: 30`` when ``numbers``) into a dict.

    >>> parse_key_lines("tier: pro, enterprise\\nlocale: de", numbers=False)
    {'tier': ['pro', 'enterprise'], 'locale': ['de']}
    """
    result: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        match = _LINE.match(raw)
        if match is None:
            raise ValidationError(f"line {number}: write 'key: value' (got {raw.strip()!r})")
        key, value = match.groups()
        if numbers:
            try:
                count = int(value)
            except ValueError:
                raise ValidationError(f"line {number}: {key} needs a whole number") from None
            if count < 0:
                raise ValidationError(f"line {number}: {key} cannot be negative")
            result[key] = count
        else:
            values = [v.strip() for v in value.split(",") if v.strip()]
            if not values:
                raise ValidationError(f"line {number}: {key} needs at least one value")
            result[key] = values
    return result


def format_key_lines(data: Mapping[str, Any] | None) -> str:
    lines = []
    for key, value in (data or {}).items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        lines.append(f"{key}: {shown}")
    return "\n".join(lines)


class StrategyForm(forms.Form):
    """Everything of a sampling strategy (docs/api.md ``POST .../strategies/``)."""

    name = forms.CharField(max_length=100)
    mode = forms.ChoiceField(
        choices=(
            ("probabilistic", "probabilistic — records pi, labels give unbiased estimates"),
            ("deterministic", "deterministic — ranked batch, training data only, no estimates"),
        ),
        initial="probabilistic",
    )
    weight_uncertainty = forms.FloatField(
        min_value=0, max_value=1, initial=0.6, label="Uncertainty"
    )
    weight_coverage = forms.FloatField(min_value=0, max_value=1, initial=0.2, label="Coverage")
    weight_random = forms.FloatField(min_value=0, max_value=1, initial=0.2, label="Random")
    uncertainty_measure = forms.ChoiceField(choices=UNCERTAINTY_MEASURES, initial="sqrt")
    batch_size = forms.IntegerField(min_value=1, initial=200, help_text="expected labels per run")
    model_versions = forms.CharField(
        required=False, help_text="comma-separated; empty: every model version"
    )
    segment_filter = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "tier: pro, enterprise"}),
        label="Segment filter",
        help_text="one 'key: value, value' per line; empty: every segment",
    )
    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    segment_minimums = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "tier: 30"}),
        help_text="minimum labels wanted per value of a segment key, one 'key: N' per line",
    )
    overlap_fraction = forms.FloatField(min_value=0, max_value=1, initial=0.0)
    overlap_k = forms.IntegerField(min_value=1, max_value=20, initial=2, label="Overlap k")
    holdout_fraction = forms.FloatField(min_value=0, max_value=1, initial=0.0)
    schedule = forms.CharField(
        required=False, max_length=100, help_text="crontab, e.g. '0 6 * * *'; empty: manual only"
    )
    active = forms.BooleanField(required=False, initial=True)

    WEIGHT_FIELDS = {
        "uncertainty": "weight_uncertainty",
        "coverage": "weight_coverage",
        "random": "weight_random",
    }

    def clean_segment_filter(self) -> dict[str, list[str]]:
        return parse_key_lines(self.cleaned_data.get("segment_filter") or "", numbers=False)

    def clean_segment_minimums(self) -> dict[str, int]:
        return parse_key_lines(self.cleaned_data.get("segment_minimums") or "", numbers=True)

    def clean_model_versions(self) -> list[str]:
        raw = self.cleaned_data.get("model_versions") or ""
        return [v.strip() for v in raw.split(",") if v.strip()]

    def strategy_data(self) -> dict[str, Any]:
        """The API's strategy dict built from the cleaned form."""
        data = self.cleaned_data
        filters: dict[str, Any] = {}
        if data.get("model_versions"):
            filters["model_versions"] = data["model_versions"]
        if data.get("segment_filter"):
            filters["segment"] = data["segment_filter"]
        for key in ("since", "until"):
            if data.get(key):
                filters[key] = data[key].isoformat()
        return {
            "name": data["name"],
            "mode": data["mode"],
            "weights": {w: data[f] for w, f in self.WEIGHT_FIELDS.items()},
            "uncertainty_measure": data["uncertainty_measure"],
            "batch_size": data["batch_size"],
            "filters": filters,
            "segment_minimums": data.get("segment_minimums") or {},
            "overlap_fraction": data["overlap_fraction"],
            "overlap_k": data["overlap_k"],
            "holdout_fraction": data["holdout_fraction"],
            "schedule": data.get("schedule") or None,
            "active": bool(data.get("active")),
        }

    @classmethod
    def initial_from(cls, strategy: Any) -> dict[str, Any]:
        """Initial form values from a SamplingStrategy row."""
        filters = strategy.filters or {}
        weights = strategy.weights or {}
        return {
            "name": strategy.name,
            "mode": strategy.mode,
            **{f: weights.get(w, 0.0) for w, f in cls.WEIGHT_FIELDS.items()},
            "uncertainty_measure": strategy.uncertainty_measure,
            "batch_size": strategy.batch_size,
            "model_versions": ", ".join(filters.get("model_versions") or []),
            "segment_filter": format_key_lines(filters.get("segment")),
            "since": filters.get("since"),
            "until": filters.get("until"),
            "segment_minimums": format_key_lines(strategy.segment_minimums),
            "overlap_fraction": strategy.overlap_fraction,
            "overlap_k": strategy.overlap_k,
            "holdout_fraction": strategy.holdout_fraction,
            "schedule": strategy.schedule or "",
            "active": strategy.active,
        }

    def field_for(self, location: str) -> str | None:
        """The form field an API error location (``weights.random``, ``filters.segment``) names."""
        head, _, rest = location.partition(".")
        if head == "weights":
            return self.WEIGHT_FIELDS.get(rest.split(".")[0], "weight_random")
        if head == "filters":
            sub = rest.split(".")[0]
            return {"segment": "segment_filter", "model_versions": "model_versions"}.get(
                sub, sub if sub in self.fields else None
            )
        return head if head in self.fields else None


def _words(value: str) -> list[str]:
    """``"a, b\nc"`` -> ``["a", "b", "c"]`` (the rule form's list fields)."""
    return [w.strip() for w in value.replace("\n", ",").split(",") if w.strip()]


class AlertRuleForm(forms.Form):
    """An alert rule (docs/estimates.md "Alerts"); lists are comma-separated."""

    name = forms.CharField(max_length=100)
    model_versions = forms.CharField(
        required=False,
        label="Model versions to watch",
        help_text="comma-separated; empty: every version but the baseline",
    )
    baseline = forms.CharField(
        required=False,
        max_length=200,
        help_text="the version to compare with; empty: the one with the most traffic",
    )
    segment_key = forms.ChoiceField(
        required=False, label="Per segment", help_text="watch each value of this segment key"
    )
    segment_values = forms.CharField(
        required=False, help_text="comma-separated; empty: every value of the segment key"
    )
    min_effect_points = forms.FloatField(
        min_value=0,
        max_value=50,
        initial=0,
        label="Minimum drop (points)",
        help_text="alert only when the whole interval lies below minus this many points",
    )
    alpha = forms.FloatField(
        min_value=0.001,
        max_value=0.2,
        initial=0.05,
        label="False-alarm rate",
        help_text="held however often anyone looks (always-valid monitoring)",
    )
    emails = forms.CharField(
        required=False,
        label="E-mail to",
        help_text="comma-separated; empty: the project's admins",
    )
    active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, segment_keys: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "whole versions"), *((k, k) for k in segment_keys)]
        self.fields["segment_key"].choices = choices  # type: ignore[attr-defined]

    @classmethod
    def initial_for(cls, rule: Any) -> dict[str, Any]:
        return {
            "name": rule.name,
            "model_versions": ", ".join(rule.model_versions),
            "baseline": rule.baseline,
            "segment_key": rule.segment_key,
            "segment_values": ", ".join(rule.segment_values),
            "min_effect_points": round(100 * rule.min_effect, 2),
            "alpha": rule.alpha,
            "emails": ", ".join(rule.emails),
            "active": rule.active,
        }

    def service_data(self) -> dict[str, Any]:
        """The cleaned form in the service's (and the API's) shape."""
        c = self.cleaned_data
        return {
            "name": c["name"],
            "model_versions": _words(c["model_versions"]),
            "baseline": c["baseline"],
            "segment_key": c["segment_key"],
            "segment_values": _words(c["segment_values"]),
            "min_effect": c["min_effect_points"] / 100,
            "alpha": c["alpha"],
            "emails": _words(c["emails"]),
            "active": c["active"],
        }
