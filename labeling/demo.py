"""The demo project: HH-RLHF harmless conversations as a support bot's production traffic.

Each of the 2,312 conversations (``labeling/demo_data``, MIT, Anthropic) becomes **one**
interaction: the shared prompt turns as ``messages`` and one of the two final assistant turns as
``response``. Which one is served depends on the model version, so versions differ in quality
(the story the demo tells, docs/dashboards.md "The demo"):

- ``support-bot-2026-10`` (the stable version, all 35 days): serves the human-preferred
  ("chosen") answer with probability 0.68;
- ``support-bot-2026-11`` (a new version rolled out to 45% of traffic for the last 21 days): 0.76
  on web and api, but 0.42 on ``surface=mobile`` — better overall at first sight, a regression in
  one segment that always-valid monitoring confirms and an alert reports.

``metadata.truth`` records which answer was served (``"chosen"`` = good); ``metadata.simulated``
is true. About 20% of interactions are shadow comparisons: ``alt_response`` holds the other answer
(``alt_model_version = "support-bot-shadow"``) for the optional pairwise question.

Segments: tier (free 60% / pro 30% / enterprise 10%), locale (en, de, fr, es, ja) and surface
(web / mobile / api), occurred_at uniform over the last 35 days.

After loading, ``sampling`` builds the history (``sampling.services.demo``): weekly sampling runs
over all but the last two days, labels simulated from ``metadata.truth`` arriving one to a few
days after each interaction (:func:`demo_labels_write`), so the newest selected items are still
waiting in the queue and the last two days are an unsampled pool.

Signals are simulated per interaction from a seeded RNG (``SEED``), so a rerun gives the same data:

- explicit thumbs on about 2% of interactions, mostly from unhappy users: P(rate) is 4.5% for a
  bad answer and 0.8% for a good one, times a segment factor (enterprise 2.0, pro 1.2, free 0.8;
  web 1.2, mobile 0.9, api 0.1). A rating of a bad answer is a thumbs down 90% of the time, of a
  good one a thumbs up 85% of the time. Thumbs arrive late (exponential, mean 2 hours).
- implicit signals, P(bad answer) / P(good answer): regenerate 25% / 5%, edit 12% / 4% (edit ratio
  0.3 to 0.9 / 0.05 to 0.3), abandon 20% / 6%, follow_up 30% / 10%, copy 10% / 35%, share 1% / 3%,
  dwell_ms on 70% (log-normal), custom ``escalated`` 8% / 1%.
- ``scores.judge_harmless``: a noisy automatic judge, Beta(5, 3) for good answers and Beta(3, 4)
  for bad ones (the project's primary judge).

Rows go through the same ingestion service as the API, so loading twice creates nothing new.
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from labeling import hooks
from labeling.models import Annotation, Membership, Project, QueueItem, Role
from labeling.schema import DEFAULT_SCHEMA
from labeling.services.ingest import IngestResult, interactions_ingest
from labeling.services.projects import membership_add, project_create

DATA_FILE = Path(__file__).resolve().parent / "demo_data" / "harmless-base-test.jsonl.gz"
SEED = 20261127
PROJECT_SLUG = "support-bot"
PROJECT_NAME = "Support bot (demo)"
SEGMENT_KEYS = ["tier", "locale", "surface"]
JUDGE = "judge_harmless"
DAYS = 35
NEW_VERSION_DAYS = 21
STABLE = "support-bot-2026-10"
NEW = "support-bot-2026-11"

# (username, role, password); role None: a superuser.
DEMO_USERS: list[tuple[str, str | None, str]] = [
    ("admin", None, "admin-demo"),
    ("manager", Role.ADMIN, "manager-demo"),
    ("engineer", Role.ENGINEER, "engineer-demo"),
    ("reviewer", Role.REVIEWER, "reviewer-demo"),
    ("annotator", Role.ANNOTATOR, "annotator-demo"),
    ("annotator2", Role.ANNOTATOR, "annotator2-demo"),
]

DEMO_SCHEMA: dict[str, Any] = {
    "questions": [
        *DEFAULT_SCHEMA["questions"],
        {
            "key": "preference",
            "type": "pairwise",
            "prompt": "Which response is better? (shadow comparisons only)",
            "required": False,
        },
    ],
    "target": dict(DEFAULT_SCHEMA["target"]),
}
GUIDELINES = (
    "Rate how good the assistant's last answer is for a customer: helpful, honest and harmless. "
    "A refusal of a harmful request is a good answer; helping with harm is unusable. "
    "Tick every failure mode that applies and correct the answer when you can."
)

_TURN_RE = re.compile(r"\n\n(Human|Assistant):")
_P_GOOD = {STABLE: 0.68, NEW: 0.76}
# The new version's regression: its share of good answers on this surface.
_P_GOOD_SEGMENT = {(NEW, "mobile"): 0.42}
TIER = (("free", 0.6), ("pro", 0.3), ("enterprise", 0.1))
LOCALE = (("en", 0.55), ("de", 0.15), ("fr", 0.12), ("es", 0.12), ("ja", 0.06))
SURFACE = (("web", 0.5), ("mobile", 0.35), ("api", 0.15))
RATE_FACTOR = {"free": 0.8, "pro": 1.2, "enterprise": 2.0, "web": 1.2, "mobile": 0.9, "api": 0.1}
# event type -> (P if the answer is bad, P if good)
IMPLICIT = {
    "regenerate": (0.25, 0.05),
    "abandon": (0.20, 0.06),
    "follow_up": (0.30, 0.10),
    "copy": (0.10, 0.35),
    "share": (0.01, 0.03),
    "escalated": (0.08, 0.01),
}


@dataclass(frozen=True)
class Conversation:
    index: int
    messages: list[dict[str, str]]
    chosen: str
    rejected: str


def split_dialogue(text: str) -> tuple[list[dict[str, str]], str] | None:
    """``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` -> (prompt messages, final assistant turn)."""
    parts = _TURN_RE.split(text)
    # parts: [lead, role, content, role, content, ...]
    if len(parts) < 5 or parts[-2] != "Assistant":
        return None
    messages = []
    for role, content in zip(parts[1:-2:2], parts[2:-2:2], strict=True):
        messages.append(
            {"role": "user" if role == "Human" else "assistant", "content": content.strip()}
        )
    response = parts[-1].strip()
    if not messages or messages[0]["role"] != "user" or not response:
        return None
    return messages, response


def conversations(limit: int | None = None) -> Iterator[Conversation]:
    """The shipped conversations, in file order (the first ``limit`` only when given)."""
    with gzip.open(DATA_FILE, "rt", encoding="utf-8") as handle:
        import orjson

        for index, line in enumerate(handle):
            if limit is not None and index >= limit:
                return
            pair = orjson.loads(line)
            chosen = split_dialogue(pair["chosen"])
            rejected = split_dialogue(pair["rejected"])
            if chosen is None or rejected is None:
                continue
            yield Conversation(index, chosen[0], chosen[1], rejected[1])


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x < 0:
            return value
    return weighted[-1][0]


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def simulate(conv: Conversation, rng: random.Random, now: dt.datetime) -> dict[str, Any]:
    """One ingestible interaction (with inline events) for a conversation; see the module doc."""
    age_days = rng.random() * DAYS
    occurred = now - dt.timedelta(days=age_days)
    version = NEW if age_days < NEW_VERSION_DAYS and rng.random() < 0.45 else STABLE
    tier, locale, surface = _pick(rng, TIER), _pick(rng, LOCALE), _pick(rng, SURFACE)
    good = rng.random() < _P_GOOD_SEGMENT.get((version, surface), _P_GOOD[version])
    response, other = (conv.chosen, conv.rejected) if good else (conv.rejected, conv.chosen)

    events: list[dict[str, Any]] = []

    def at(seconds: float) -> str:
        return _iso(occurred + dt.timedelta(seconds=seconds))

    p_rate = (0.008 if good else 0.045) * RATE_FACTOR[tier] * RATE_FACTOR[surface]
    if rng.random() < p_rate:
        positive = rng.random() < (0.85 if good else 0.10)
        delay = rng.expovariate(1 / 7200)
        events.append({"type": "thumbs_up" if positive else "thumbs_down", "at": at(delay)})
    for etype, (p_bad, p_good) in IMPLICIT.items():
        if rng.random() < (p_good if good else p_bad):
            events.append({"type": etype, "at": at(rng.uniform(2, 600))})
    if rng.random() < (0.04 if good else 0.12):
        ratio = rng.uniform(0.05, 0.3) if good else rng.uniform(0.3, 0.9)
        events.append({"type": "edit", "value": round(ratio, 3), "at": at(rng.uniform(5, 300))})
    if rng.random() < 0.7:
        dwell = math.exp(rng.gauss(9.5 if good else 9.0, 0.8))
        events.append({"type": "dwell_ms", "value": round(dwell), "at": at(1)})

    judge = rng.betavariate(5, 3) if good else rng.betavariate(3, 4)
    row: dict[str, Any] = {
        "external_id": f"hh-harmless-test-{conv.index:04d}",
        "conversation_id": f"hh-conv-{conv.index:04d}",
        "occurred_at": _iso(occurred),
        "model_version": version,
        "messages": conv.messages,
        "response": response,
        "segment": {"tier": tier, "locale": locale, "surface": surface},
        "metadata": {
            "simulated": True,
            "truth": "chosen" if good else "rejected",
            "source": "anthropic/hh-rlhf harmless-base test",
            "row": conv.index,
            "latency_ms": int(rng.lognormvariate(6.7, 0.4)),
        },
        "scores": {JUDGE: round(judge, 4)},
        "events": events,
    }
    if rng.random() < 0.2:
        row["alt_response"] = other
        row["alt_model_version"] = "support-bot-shadow"
    return row


def demo_label_values(*, good: bool, rng: random.Random) -> dict[str, Any]:
    """What an annotator who knows the truth answers: 4-5 for a good answer, 1-2 for a bad one."""
    if good:
        return {"quality": rng.choice([4, 5, 5])}
    return {
        "quality": rng.choice([1, 2, 2]),
        "failure_modes": [rng.choice(["incomplete", "tone", "unsafe"])],
    }


def demo_labels_write(
    *, project: Project, labels: list[tuple[int, dict[str, Any], dt.datetime]]
) -> int:
    """Simulated labels of the demo history: ``(queue item id, values, when)`` each, by the demo
    annotators in turn, dated ``when`` (the label arrived then). Marks the items done. Bulk rows,
    written only by the demo loader (never for real traffic)."""
    User = get_user_model()
    annotators = list(User.objects.filter(username__in=["annotator", "annotator2"]).order_by("id"))
    if not labels or not annotators:
        return 0
    items = QueueItem.objects.in_bulk([q for q, _, _ in labels])
    rows = []
    for i, (queue_item_id, values, _) in enumerate(labels):
        item = items[queue_item_id]
        rows.append(
            Annotation(
                queue_item=item,
                interaction_id=item.interaction_id,
                annotator=annotators[i % len(annotators)],
                values=values,
                schema_version=project.schema_version,
                time_spent_ms=12_000 + (queue_item_id * 7919) % 30_000,
            )
        )
    with transaction.atomic():
        created = Annotation.objects.bulk_create(rows)
        for row, (_, _, when) in zip(created, labels, strict=True):
            row.created_at = when
        Annotation.objects.bulk_update(created, ["created_at"], batch_size=500)
        QueueItem.objects.filter(pk__in=list(items)).update(
            status=QueueItem.Status.DONE, done_count=1
        )
    return len(created)


@dataclass
class DemoResult:
    project: Project
    project_created: bool
    users_created: list[str]
    ingest: IngestResult


def demo_users_ensure() -> list[str]:
    """Create the demo users that do not exist yet (existing ones keep their passwords)."""
    User = get_user_model()
    created = []
    for username, role, password in DEMO_USERS:
        if User.objects.filter(username=username).exists():
            continue
        if role is None:
            User.objects.create_superuser(username, f"{username}@example.com", password)
        else:
            User.objects.create_user(username, f"{username}@example.com", password)
        created.append(username)
    return created


def demo_memberships_ensure(*, project: Project) -> None:
    User = get_user_model()
    for username, role, _ in DEMO_USERS:
        user = User.objects.get(username=username)
        if role is not None and not Membership.objects.filter(project=project, user=user).exists():
            membership_add(project=project, user=user, role=role)


def demo_load(*, limit: int | None = None, now: dt.datetime | None = None) -> DemoResult:
    """Build (or complete) the demo project. Idempotent: existing rows and users are kept.

    Fires ``demo_loaded(project_id=...)`` after commit when anything was created.
    """
    now = now or timezone.now()
    User = get_user_model()
    with transaction.atomic():
        users_created = demo_users_ensure()
        project = Project.objects.filter(slug=PROJECT_SLUG).first()
        project_created = project is None
        if project is None:
            owner = User.objects.filter(username="manager").first()
            project = project_create(
                slug=PROJECT_SLUG,
                name=PROJECT_NAME,
                created_by=owner,
                label_schema=DEMO_SCHEMA,
                segment_keys=SEGMENT_KEYS,
                description=(
                    "Anthropic HH-RLHF harmless conversations replayed as a support bot's "
                    "traffic, with simulated user signals (see docs/ingestion.md)."
                ),
                custom_event_types=["escalated"],
                primary_judge=JUDGE,
                guidelines=GUIDELINES,
            )
        demo_memberships_ensure(project=project)
    rng = random.Random(SEED)
    items = ((conv.index + 1, simulate(conv, rng, now)) for conv in conversations(limit))
    result = interactions_ingest(project=project, items=items, loc_key="line")
    if project_created or result.created:
        pid = project.pk
        transaction.on_commit(lambda: hooks.fire("demo_loaded", project_id=pid))
    return DemoResult(project, project_created, users_created, result)
