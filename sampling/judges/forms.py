"""The judge form of the admin page: parses the browser's fields into the service's data dict.
Validation is the service's (``judge_validate``); its field errors are put back on the form."""

from __future__ import annotations

from typing import Any

from django import forms

from sampling.judges.config import DEFAULTS
from sampling.judges.models import Judge
from sampling.judges.prompt import DEFAULT_TEMPLATE, PLACEHOLDERS


class JudgeForm(forms.Form):
    name = forms.CharField(
        max_length=64, help_text="letters, digits, - and _; scores are stored as judge:<name>"
    )
    base_url = forms.CharField(
        label="Base URL",
        help_text="OpenAI-compatible, e.g. https://api.openai.com/v1 or http://localhost:8000/v1",
    )
    model = forms.CharField()
    api_key_env = forms.CharField(
        required=False,
        label="API key variable",
        help_text="the NAME of the workers' environment variable holding the key (never the key)",
    )
    prompt_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false"}),
        initial=DEFAULT_TEMPLATE,
        help_text="placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS),
    )
    template_syntax = forms.ChoiceField(choices=Judge.TemplateSyntax.choices, initial="format")
    score_min = forms.FloatField(initial=1)
    score_max = forms.FloatField(initial=10)
    temperature = forms.FloatField(initial=0)
    max_tokens = forms.IntegerField(initial=256)
    timeout_s = forms.FloatField(initial=30, label="Timeout (s)")
    request_logprobs = forms.BooleanField(required=False, label="Ask for logprobs")
    concurrency = forms.IntegerField(initial=4)
    batch_size = forms.IntegerField(initial=64)
    max_retries = forms.IntegerField(initial=4)
    rpm_limit = forms.IntegerField(initial=0, label="Requests/minute", help_text="0: no limit")
    tpm_limit = forms.IntegerField(initial=0, label="Tokens/minute", help_text="0: no limit")
    daily_request_budget = forms.IntegerField(initial=0, help_text="0: no budget")
    daily_token_budget = forms.IntegerField(initial=0, help_text="0: no budget")
    scope = forms.ChoiceField(choices=Judge.Scope.choices, initial="all")
    fraction = forms.FloatField(initial=1, help_text="for 'a random fraction': 0 < f <= 1")
    active = forms.BooleanField(required=False, initial=True)
    is_primary = forms.BooleanField(
        required=False, label="Primary judge", help_text="feeds the proxy (and f) of the project"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Numbers are checked by the service (one set of rules and messages for every caller).
        for field in self.fields.values():
            field.required = field.required and isinstance(field, forms.CharField)
            field.widget.attrs.setdefault("autocomplete", "off")

    @staticmethod
    def initial_from(judge: Judge) -> dict[str, Any]:
        data = {key: getattr(judge, key) for key in DEFAULTS}
        data["active"] = judge.status == Judge.Status.ACTIVE
        data["is_primary"] = judge.is_primary
        return data

    def judge_data(self) -> dict[str, Any]:
        data = {k: v for k, v in self.cleaned_data.items() if v is not None and v != ""}
        data["api_key_env"] = (self.cleaned_data.get("api_key_env") or "").strip()
        return data
