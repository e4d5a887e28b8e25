"""Judges against a real OpenAI-compatible server on loopback: retries, Retry-After, timeouts,
the circuit breaker, malformed and non-numeric replies, the budget, idempotency, versions and the
key never leaking. No mock of the client: every call is a real HTTP request."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.test import override_settings
from django.urls import reverse

from labeling.models import Interaction, Project
from sampling.judges import client as judge_client
from sampling.judges.config import judge_create, judge_update
from sampling.judges.execution import judge_run_batch, judge_schedule
from sampling.judges.models import Judge, JudgeResult, JudgeUsage
from sampling.judges.tasks import run_judge, sweep
from tests.factories import InteractionFactory
from tests.judge_server import StubJudge

FAST = {
    "FLYWHEEL": {
        "SCORE_CHUNK_SIZE": 5000,
        "JUDGES": {"BACKOFF_BASE_S": 0.01, "BACKOFF_CAP_S": 0.05, "BREAKER_COOLDOWN_S": 60},
    }
}


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    server = StubJudge(retry_after="1", hang_s=1.5).start()
    judge_client.breakers_reset()
    yield server
    server.stop()
    judge_client.breakers_reset()


@pytest.fixture(autouse=True)
def _fast_retries() -> Iterator[None]:
    with override_settings(**FAST):
        yield


def make_judge(project: Project, stub: StubJudge, **extra: object) -> Judge:
    data = {"name": "helpful", "base_url": stub.url, "model": "stub-judge", **extra}
    return judge_create(project=project, data=data)


def interactions(project: Project, *texts: str) -> list[Interaction]:
    return [InteractionFactory(project=project, response=t) for t in texts]


def results(judge: Judge) -> dict[str, JudgeResult]:
    return {
        r.interaction.response: r
        for r in JudgeResult.objects.filter(judge=judge).select_related("interaction")
    }


def test_scores_are_stored_once_with_source_version_latency_tokens_and_reason(project, stub):
    judge = make_judge(project, stub, batch_size=3, concurrency=4)
    items = interactions(project, *(f"answer {i} [[score={i}]]" for i in range(1, 8)))
    assert judge_schedule(judge=judge, interaction_ids=[i.pk for i in items]) == 7
    assert judge_schedule(judge=judge, interaction_ids=[i.pk for i in items]) == 0
    run_judge(judge.pk)
    run_judge(judge.pk)  # a rerun finds nothing to do
    assert len(stub.requests) == 7
    rows = results(judge)
    assert {r.status for r in rows.values()} == {"done"}
    row = rows["answer 7 [[score=7]]"]
    assert (row.score, row.method, row.reason) == (7.0, "json", "stub judged it 7")
    assert (row.prompt_tokens, row.completion_tokens) == (100, 12)
    assert row.latency_ms is not None
    assert row.version.hash
    assert row.version.snapshot["model"] == "stub-judge"
    for item in items:
        item.refresh_from_db()
    # Stored on [0, 1] under judge:<name> for the proxy: (7 - 1) / (10 - 1).
    assert items[6].scores["judge:helpful"] == pytest.approx(6 / 9)
    assert items[0].scores["judge:helpful"] == 0.0
    body = stub.requests[0].body
    assert body["model"] == "stub-judge"
    assert body["temperature"] == 0.0
    assert "Reply with only a JSON object" in body["messages"][0]["content"]
    assert JudgeUsage.objects.get(judge=judge).requests == 7
    assert JudgeUsage.objects.get(judge=judge).tokens == 7 * 112


def test_ingest_through_the_api_judges_new_arrivals(
    project, stub, api_as, django_capture_on_commit_callbacks
):
    judge = make_judge(project, stub)
    client = api_as("engineer")
    rows = [
        {
            "external_id": f"r{i}",
            "occurred_at": "2026-11-20T10:02:03Z",
            "messages": [{"role": "user", "content": "hi"}],
            "response": f"reply {i} [[score={i + 2}]]",
        }
        for i in range(4)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"}),
            rows,
            format="json",
        )
    assert answer.status_code in (200, 201), answer.content
    stored = dict(Interaction.objects.filter(project=project).values_list("external_id", "scores"))
    assert stored["r3"]["judge:helpful"] == pytest.approx(4 / 9)
    assert JudgeResult.objects.filter(judge=judge, status="done").count() == 4


def test_429_is_retried_after_retry_after_and_500_with_backoff(project, stub):
    judge = make_judge(project, stub)
    items = interactions(project, "slow down [[429x1]] [[score=8]]", "flaky [[500x2]] [[score=3]]")
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    rows = results(judge)
    assert rows["slow down [[429x1]] [[score=8]]"].score == 8.0
    assert rows["flaky [[500x2]] [[score=3]]"].score == 3.0
    limited = stub.requests_for("[[429x1]]")
    assert [r.status for r in limited] == [429, 200]
    assert limited[1].at - limited[0].at >= 1.0  # Retry-After: 1 was honoured
    assert [r.status for r in stub.requests_for("[[500x2]]")] == [500, 500, 200]
    assert rows["flaky [[500x2]] [[score=3]]"].attempts == 3


@override_settings(FLYWHEEL={"JUDGES": {**FAST["FLYWHEEL"]["JUDGES"], "BREAKER_THRESHOLD": 100}})
def test_a_hang_past_the_timeout_is_retried_then_reported_failed(project, stub):
    judge = make_judge(project, stub, timeout_s=0.2, max_retries=1)
    items = interactions(project, "stuck [[hang]]", "fine [[score=9]]")
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    # Eagerly a task stops once a round makes no progress; the sweep (here: a second call) and
    # on a worker the re-enqueued task take the next round.
    assert results(judge)["stuck [[hang]]"].status == "pending"
    run_judge(judge.pk)
    rows = results(judge)
    assert rows["fine [[score=9]]"].status == "done"
    stuck = rows["stuck [[hang]]"]
    # Two attempts per round, three rounds, then visible as failed (never a score of 0).
    assert stuck.status == "failed"
    assert stuck.score is None
    assert stuck.error.startswith("timeout")
    assert len(stub.requests_for("[[hang]]")) == 6


def test_malformed_and_non_numeric_replies_are_counted_never_zero(project, stub):
    judge = make_judge(project, stub)
    items = interactions(
        project,
        "broken [[malformed]]",
        "words [[text:It is quite good overall.]]",
        'off scale [[text:{"score": 42}]]',
        "prose number [[text:I would give it 6.]]",
    )
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    rows = results(judge)
    assert rows["broken [[malformed]]"].status == "failed"
    assert "bad_reply" in rows["broken [[malformed]]"].error
    for text in ("words [[text:It is quite good overall.]]", 'off scale [[text:{"score": 42}]]'):
        assert rows[text].status == "unparseable"
        assert rows[text].score is None
        assert rows[text].raw_reply
    assert rows["prose number [[text:I would give it 6.]]"].score == 6.0
    assert rows["prose number [[text:I would give it 6.]]"].method == "last_number"
    for item in items[:3]:
        item.refresh_from_db()
        assert "judge:helpful" not in item.scores


def test_logprobs_give_the_expected_score(project, stub):
    judge = make_judge(project, stub, request_logprobs=True)
    items = interactions(project, "fine [[score=8]]")
    judge_schedule(judge=judge, interaction_ids=[items[0].pk])
    run_judge(judge.pk)
    row = JudgeResult.objects.get(judge=judge)
    assert stub.requests[0].body["logprobs"] is True
    assert row.method == "logprobs"
    assert row.score == pytest.approx(0.8 * 8 + 0.2 * 7, abs=1e-6)


def test_the_circuit_opens_and_leaves_work_pending(project, stub):
    stub.always_status = 503
    judge = make_judge(project, stub, max_retries=0, batch_size=20, concurrency=1)
    items = interactions(project, *(f"item {i}" for i in range(12)))
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    outcome = judge_run_batch(judge_id=judge.pk)
    # Five failed attempts open the breaker; the other rows are not even tried.
    assert len(stub.requests) == 5
    assert outcome.retry_in > 0
    assert outcome.more
    assert JudgeResult.objects.filter(judge=judge, status="pending").count() == 12
    run_judge(judge.pk)  # still open: fails fast, sends nothing
    assert len(stub.requests) == 5


def test_the_daily_budget_pauses_with_a_reason_and_resumes(project, stub):
    judge = make_judge(project, stub, daily_request_budget=3, batch_size=2)
    items = interactions(project, *(f"item {i} [[score=6]]" for i in range(5)))
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    judge.refresh_from_db()
    assert len(stub.requests) == 3
    assert JudgeResult.objects.filter(judge=judge, status="done").count() == 3
    assert judge.status == "paused"
    assert judge.pause_kind == "budget"
    assert "daily request budget of 3 reached" in judge.pause_reason
    sweep()  # same day, same budget: stays paused
    judge.refresh_from_db()
    assert judge.status == "paused"
    assert len(stub.requests) == 3
    judge_update(judge=judge, data={"daily_request_budget": 10})
    sweep()
    judge.refresh_from_db()
    assert judge.status == "active"
    assert JudgeResult.objects.filter(judge=judge, status="done").count() == 5
    assert len(stub.requests) == 5


def test_a_prompt_change_makes_a_new_version_and_old_scores_stay(project, stub):
    judge = make_judge(project, stub)
    items = interactions(project, "a [[score=4]]", "b [[score=6]]")
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    first = judge.versions.get()
    judge_update(
        judge=judge,
        data={"prompt_template": "Rate {response} from {score_min} to {score_max} as JSON."},
    )
    assert judge.versions.count() == 2
    assert judge_schedule(judge=judge, interaction_ids=[i.pk for i in items]) == 2
    run_judge(judge.pk)
    assert JudgeResult.objects.filter(version=first, status="done").count() == 2
    assert JudgeResult.objects.filter(judge=judge, status="done").count() == 4
    assert len(stub.requests) == 4


def test_the_key_is_sent_but_never_stored_logged_or_shown(
    project, stub, monkeypatch, caplog, api_as
):
    secret = "sk-test-ThisMustNeverLeak-123"
    monkeypatch.setenv("FLYWHEEL_TEST_JUDGE_KEY", secret)
    caplog.set_level(logging.DEBUG)
    judge = make_judge(project, stub, api_key_env="FLYWHEEL_TEST_JUDGE_KEY")
    items = interactions(project, "x [[500x1]] [[score=5]]", "y [[text:nope]]")
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    assert stub.requests[0].headers["Authorization"] == f"Bearer {secret}"
    client = api_as("admin")
    pages = [
        client.get(reverse("sampling_api:judges", kwargs={"slug": "support-bot"})).content,
        client.get(
            reverse("sampling_api:judge", kwargs={"slug": "support-bot", "judge_id": judge.pk})
        ).content,
        client.get(
            reverse(
                "sampling_api:judge-results", kwargs={"slug": "support-bot", "judge_id": judge.pk}
            )
        ).content,
    ]
    for text in [*(p.decode() for p in pages), caplog.text]:
        assert secret not in text
    stored = [
        str(v) for r in JudgeResult.objects.values_list("error", "raw_reply", "reason") for v in r
    ]
    assert all(secret not in v for v in stored)


def test_a_server_echoing_the_key_gets_it_into_no_row_page_log_or_answer(
    project, stub, monkeypatch, caplog, api_as, client, member
):
    """Some servers echo the Authorization header in errors; the key is scrubbed before any
    error, reply or log line is built, on every page and API answer an admin can open."""
    secret = "sk-test-EchoedBackByTheServer-456"
    monkeypatch.setenv("FLYWHEEL_TEST_JUDGE_KEY", secret)
    caplog.set_level(logging.DEBUG)
    judge = make_judge(project, stub, api_key_env="FLYWHEEL_TEST_JUDGE_KEY", is_primary=True)
    items = interactions(project, "a [[echo-auth]]", "b [[echo-auth-reply]]", "c [[score=8]]")
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    got = results(judge)
    assert got["a [[echo-auth]]"].status == "failed"
    assert "[api key]" in got["a [[echo-auth]]"].error
    assert got["b [[echo-auth-reply]]"].status == "unparseable"
    assert "[api key]" in got["b [[echo-auth-reply]]"].raw_reply
    assert got["c [[score=8]]"].status == "done"
    assert any(secret in r.headers.get("Authorization", "") for r in stub.requests)

    api = api_as("admin")
    ids = {"slug": "support-bot", "judge_id": judge.pk}
    answers = [
        api.get(reverse("sampling_api:judges", kwargs={"slug": "support-bot"})),
        api.get(reverse("sampling_api:judge", kwargs=ids)),
        api.get(reverse("sampling_api:judge-results", kwargs=ids)),
        api.get(reverse("sampling_api:judge-calibration", kwargs=ids)),
        api.post(reverse("sampling_api:judge-test", kwargs=ids)),
    ]
    client.force_login(member("admin"))
    pages = [
        client.get(reverse("project-judges", kwargs={"slug": "support-bot"})),
        client.get(reverse("project-judge", kwargs={"slug": "support-bot", "judge_id": judge.pk})),
        client.get(
            reverse("project-judge-trust", kwargs={"slug": "support-bot", "judge_id": judge.pk})
        ),
        client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})),
        client.post(
            reverse("project-judge-action", kwargs={"slug": "support-bot", "judge_id": judge.pk}),
            {"action": "test"},
            follow=True,
        ),
    ]
    for answer in [*answers, *pages]:
        assert answer.status_code in (200, 400), answer
        assert secret not in answer.content.decode()
    assert secret not in caplog.text
    stored = [
        str(v) for r in JudgeResult.objects.values_list("error", "raw_reply", "reason") for v in r
    ]
    assert all(secret not in v for v in stored)


def test_a_missing_key_variable_pauses_the_judge_with_its_name(project, stub, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_NO_SUCH_KEY", raising=False)
    judge = make_judge(project, stub, api_key_env="FLYWHEEL_NO_SUCH_KEY")
    items = interactions(project, "a")
    judge_schedule(judge=judge, interaction_ids=[items[0].pk])
    run_judge(judge.pk)
    judge.refresh_from_db()
    assert judge.status == "paused"
    assert "FLYWHEEL_NO_SUCH_KEY" in judge.pause_reason
    assert not stub.requests


def test_an_outage_never_blocks_ingest(project, api_as, django_capture_on_commit_callbacks):
    # Nothing listens on this port: the judge fails, ingest still answers and stores every row.
    judge_create(
        project=project,
        data={"name": "down", "base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0},
    )
    rows = [
        {
            "external_id": f"o{i}",
            "occurred_at": "2026-11-20T10:02:03Z",
            "messages": [{"role": "user", "content": "hi"}],
            "response": "r",
        }
        for i in range(3)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_as("engineer").post(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"}),
            rows,
            format="json",
        )
    assert answer.status_code in (200, 201), answer.content
    assert Interaction.objects.filter(project=project).count() == 3
    assert JudgeResult.objects.filter(status="done").count() == 0
    assert JudgeResult.objects.filter(status="pending").count() == 3  # retried later


def test_judge_timings_come_from_the_declared_settings(settings) -> None:
    from flywheel_site.app_settings import from_environ
    from sampling.judges.execution import breaker_settings, lease_seconds, retry_policy

    env = from_environ({"FLYWHEEL_JUDGE_LEASE_S": "30", "FLYWHEEL_JUDGE_BACKOFF_CAP_S": "3.5"})
    assert (env["JUDGE_LEASE_S"], env["JUDGE_BACKOFF_CAP_S"]) == (30, 3.5)
    settings.FLYWHEEL = {**settings.FLYWHEEL, **env, "JUDGE_BREAKER_THRESHOLD": 2}
    settings.FLYWHEEL.pop("JUDGES", None)
    assert lease_seconds() == 30
    assert retry_policy().cap_s == 3.5
    assert breaker_settings() == (2, 30.0)
    # The benchmarks' JUDGES block still overrides them.
    settings.FLYWHEEL = {**settings.FLYWHEEL, "JUDGES": {"LEASE_S": 10}}
    assert lease_seconds() == 10
