"""Judge configuration through the API, the page and ``manage.py judge``; parsing and prompt
rules; the calibration report's numbers against hand-computed and simulated values."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.models import Project
from sampling.judges import calibration
from sampling.judges.config import judge_create
from sampling.judges.models import Judge
from sampling.judges.parsing import parse_reply, parse_text
from sampling.judges.prompt import DEFAULT_TEMPLATE, MAX_TEMPLATE_CHARS, template_errors
from tests.judge_server import StubJudge

API = reverse("sampling_api:judges", kwargs={"slug": "support-bot"})


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    server = StubJudge().start()
    yield server
    server.stop()


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score", "method"),
    [
        ('{"score": 7, "reason": "clear"}', 7.0, "json"),
        ('Sure!\n```json\n{"score": "8", "reason": "ok"}\n```', 8.0, "json"),
        ('thinking... {"notes": 1} then {"score": 3.5}', 3.5, "json"),
        ("Score: 4 out of 10. Final answer: 6", 6.0, "last_number"),
        ('{"score": 11} but really 9', 9.0, "last_number"),
    ],
)
def test_replies_parse_to_a_score(text: str, score: float, method: str) -> None:
    parsed = parse_text(text, score_min=1, score_max=10)
    assert parsed is not None
    assert (parsed.score, parsed.method) == (score, method)


@pytest.mark.parametrize(
    "text", ["", "It is good.", '{"score": "high"}', "42", '{"score": NaN}', "score: 0"]
)
def test_unparseable_replies_give_none_never_zero(text: str) -> None:
    assert parse_text(text, score_min=1, score_max=10) is None


def test_logprobs_expected_value_over_the_score_token() -> None:
    logprobs = {
        "content": [
            {"token": '{"score": ', "logprob": 0.0, "top_logprobs": []},
            {
                "token": "8",
                "logprob": math.log(0.6),
                "top_logprobs": [
                    {"token": "8", "logprob": math.log(0.6)},
                    {"token": "9", "logprob": math.log(0.3)},
                    {"token": "foo", "logprob": math.log(0.1)},
                ],
            },
        ]
    }
    parsed = parse_reply('{"score": 8}', logprobs, score_min=1, score_max=10)
    assert parsed is not None
    assert parsed.method == "logprobs"
    assert parsed.score == pytest.approx((0.6 * 8 + 0.3 * 9) / 0.9)


# --- prompt ------------------------------------------------------------------------------------


def test_the_default_template_is_valid_in_both_checks() -> None:
    assert template_errors(DEFAULT_TEMPLATE, "format") == []
    assert template_errors("Judge {{ response }} for {{ guidelines }}", "django") == []


@pytest.mark.parametrize(
    ("template", "syntax", "fragment"),
    [
        ("Judge {answer}", "format", "unknown placeholder(s) answer"),
        ("Judge {response} {}", "format", "positional"),
        ("Judge {response.upper}", "format", "plain name"),
        ("Judge {response", "format", "not a valid str.format"),
        ("Judge {{ response }} {{ secret }}", "django", "unknown placeholder(s) secret"),
        ("Judge {% if %}", "django", "not a valid Django template"),
        ("No placeholder at all", "format", "must contain the {response}"),
        ("x" * (MAX_TEMPLATE_CHARS + 1), "format", "the limit is 20,000"),
    ],
)
def test_bad_templates_are_named(template: str, syntax: str, fragment: str) -> None:
    errors = template_errors(template, syntax)
    assert errors
    assert fragment in errors[0]


# --- API -------------------------------------------------------------------------------------


def test_admin_creates_reads_and_updates_a_judge(project: Project, api_as, stub) -> None:
    admin = api_as("admin")
    created = admin.post(
        API,
        {"name": "helpful", "base_url": stub.url + "/", "model": "gpt-x", "api_key_env": "K1"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["base_url"] == stub.url
    assert body["prompt_template"] == DEFAULT_TEMPLATE
    assert body["score_key"] == "judge:helpful"
    assert body["state"]["counts"] == {"pending": 0, "done": 0, "unparseable": 0, "failed": 0}
    first_version = body["state"]["version"]
    changed = admin.patch(
        f"{API}{body['id']}/", {"temperature": 0.5, "is_primary": True}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["state"]["version"] != first_version
    assert changed.json()["state"]["versions"] == 2
    project.refresh_from_db()
    assert project.primary_judge == "judge:helpful"
    listing = api_as("engineer").get(API).json()
    assert [j["name"] for j in listing["results"]] == ["helpful"]


def test_bad_configuration_gets_field_errors(project: Project, api_as) -> None:
    answer = api_as("admin").post(
        API,
        {
            "name": "bad name!",
            "base_url": "ftp://example",
            "model": "",
            "api_key": "sk-123",
            "api_key_env": "sk-live-abc",
            "prompt_template": "Rate {answer}",
            "concurrency": -1,
            "rpm_limit": -5,
            "daily_token_budget": "lots",
            "timeout_s": 0,
            "score_min": 5,
            "score_max": 1,
            "fraction": 1.5,
            "scope": "everything",
        },
        format="json",
    )
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    for field in (
        "name",
        "base_url",
        "model",
        "api_key",
        "api_key_env",
        "prompt_template",
        "concurrency",
        "rpm_limit",
        "daily_token_budget",
        "timeout_s",
        "score_max",
        "fraction",
        "scope",
    ):
        assert field in errors, field
    assert "unknown placeholder(s) answer" in str(errors["prompt_template"])
    assert "must not be negative" in str(errors["rpm_limit"])
    assert "sk-123" not in answer.content.decode()
    assert not Judge.objects.exists()


def test_template_over_20k_is_refused(project: Project, api_as, stub) -> None:
    answer = api_as("admin").post(
        API,
        {"name": "big", "base_url": stub.url, "model": "m", "prompt_template": "{response}" * 2001},
        format="json",
    )
    assert answer.status_code == 400
    assert "the limit is 20,000" in str(answer.json()["errors"]["prompt_template"])


def test_roles_and_projects_are_enforced(project: Project, other_project, api_as, stub) -> None:
    judge = judge_create(project=project, data={"name": "j", "base_url": stub.url, "model": "m"})
    assert api_as("engineer").post(API, {}, format="json").status_code == 403
    assert api_as("annotator").get(API).status_code == 403
    outsider = api_as("admin", other_project)
    assert outsider.get(f"{API}{judge.pk}/").status_code == 404
    assert (
        outsider.get(
            reverse("sampling_api:judge", kwargs={"slug": "other-bot", "judge_id": judge.pk})
        ).status_code
        == 404
    )


def test_test_connection_reports_a_score_or_an_unreachable_url(project, api_as, stub) -> None:
    admin = api_as("admin")
    good = judge_create(project=project, data={"name": "up", "base_url": stub.url, "model": "m"})
    answer = admin.post(f"{API}{good.pk}/test/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["ok"] is True
    assert answer.json()["score"] == 5.0
    down = judge_create(
        project=project, data={"name": "down", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    )
    answer = admin.post(f"{API}{down.pk}/test/")
    assert answer.status_code == 400
    assert "cannot reach the endpoint" in str(answer.json()["errors"]["base_url"])


def test_run_endpoint_queues_and_judges_by_external_id(project, api_as, stub) -> None:
    from tests.factories import InteractionFactory

    InteractionFactory(project=project, external_id="e1", response="fine [[score=9]]")
    judge = judge_create(project=project, data={"name": "j", "base_url": stub.url, "model": "m"})
    answer = api_as("admin").post(
        f"{API}{judge.pk}/run/", {"external_ids": ["e1", "nope"]}, format="json"
    )
    assert answer.status_code == 202
    assert answer.json() == {"queued": 1}


# --- page and command --------------------------------------------------------------------------


def test_admin_page_lists_creates_and_shows_field_errors(project, member, client, stub) -> None:
    admin = member("admin")
    client.force_login(admin)
    page = client.get(reverse("project-judge-new", kwargs={"slug": "support-bot"}))
    assert page.status_code == 200
    assert "Reply with only a JSON object" in page.content.decode()
    bad = client.post(
        reverse("project-judge-new", kwargs={"slug": "support-bot"}),
        {
            "name": "j",
            "base_url": stub.url,
            "model": "m",
            "prompt_template": "{nope}",
            "template_syntax": "format",
            "rpm_limit": "-3",
            "active": "on",
        },
    )
    text = bad.content.decode()
    assert "unknown placeholder(s) nope" in text
    assert "must not be negative" in text
    ok = client.post(
        reverse("project-judge-new", kwargs={"slug": "support-bot"}),
        {
            "name": "j",
            "base_url": stub.url,
            "model": "m",
            "prompt_template": DEFAULT_TEMPLATE,
            "template_syntax": "format",
            "api_key_env": "MY_KEY",
            "active": "on",
        },
    )
    assert ok.status_code == 302
    listing = client.get(reverse("project-judges", kwargs={"slug": "support-bot"})).content.decode()
    assert 'data-judge="j"' in listing
    assert "$MY_KEY" in listing


def test_manage_py_judge_create_status_and_errors(project, stub) -> None:
    out = io.StringIO()
    call_command(
        "judge",
        "create",
        "--project",
        "support-bot",
        "--name",
        "cli",
        "--base-url",
        stub.url,
        "--model",
        "m",
        "--set",
        "concurrency=8",
        "--set",
        "request_logprobs=true",
        stdout=out,
    )
    judge = Judge.objects.get(name="cli")
    assert (judge.concurrency, judge.request_logprobs) == (8, True)
    with pytest.raises(CommandError, match="rpm_limit: must not be negative"):
        call_command(
            "judge", "update", "--project", "support-bot", "--name", "cli", "--set", "rpm_limit=-1"
        )
    out = io.StringIO()
    call_command("judge", "list", "--project", "support-bot", stdout=out)
    assert "cli: m at" in out.getvalue()


# --- calibration -------------------------------------------------------------------------------


def test_kappa_r2_and_power_match_hand_computed_values() -> None:
    a = np.array([1, 1, 0, 0, 1, 0], dtype=float)
    b = np.array([1, 0, 0, 0, 1, 1], dtype=float)
    # po = 4/6; pa = pb = 1/2 -> pe = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert calibration.kappa(a, b) == pytest.approx(1 / 3)
    y = np.array([1, 0, 1, 0], dtype=float)
    assert calibration.r_squared(y, np.array([1, 0, 1, 0.0])) == 1.0
    assert calibration.r_squared(y, np.full(4, 0.5)) == 0.0
    need = calibration.labels_for_interval(p_good=0.5, half_width=0.03, r2=0.5)
    assert need["uniform"] == math.ceil(1.959963984540054**2 * 0.25 / 0.03**2)
    assert need["with_judge"] == math.ceil(need["uniform"] * 0.5)
    assert (
        calibration.labels_for_interval(p_good=0.5, half_width=0.03, r2=-0.2)["with_judge"]
        == (need["uniform"])
    )


def test_trust_report_sees_a_strong_judge_and_gives_noise_weight_zero() -> None:
    rng = np.random.default_rng(3)
    y = rng.binomial(1, 0.6, 600).astype(float)
    strong = np.clip(np.round(5.5 + 3.5 * (y - 0.5) * 2 + rng.normal(0, 1.5, 600)), 1, 10)
    noise = rng.integers(1, 11, 600).astype(float)
    good = calibration.trust_report(strong, y, scale=(1, 10))
    bad = calibration.trust_report(noise, y, scale=(1, 10))
    assert good["auc"] > 0.9
    assert good["r2"] > 0.4
    assert good["weight"] == 1.0
    assert good["r2_ci"][0] < good["r2"] < good["r2_ci"][1]
    assert bad["r2"] <= 0.02
    assert abs(bad["auc"] - 0.5) < 0.08
    small = calibration.trust_report(strong[:10], y[:10], scale=(1, 10))
    assert "fewer than 30" in small["warning"]
