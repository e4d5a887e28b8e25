"""The featurizer: pure functions from interaction fields to a sparse feature matrix (no ORM).

Every block is stateless, so a matrix computed today matches one computed after any retrain:

- hashed text of the prompt turns (unigrams) and of the response (unigrams + bigrams), with
  ``HashingVectorizer`` (l2-normalised, ``alternate_sign=False``), each in its own half of
  ``2 * TEXT_FEATURES`` columns;
- a dense block of implicit-signal aggregates (log counts of each built-in event type, edit ratio,
  dwell, explicit thumbs) and shape features (lengths, turns);
- hashed one-hots of the segment values (``seg:tier=free``), the external ``scores`` by name with
  their value (``score:reward``), and any custom signal (``sig:ticket_resolved``).

``Features.topic`` folds the hashed prompt block down to ``TOPIC_FEATURES`` columns for the topic
clustering (MiniBatchKMeans in ``sampling.proxy``); ``Features.prior_logit`` is the cold-start
prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

# The Interaction fields the featurizer reads, in this order (a ``values_list`` row).
FEATURE_FIELDS: tuple[str, ...] = (
    "messages",
    "response",
    "segment",
    "scores",
    "signals",
    "explicit_rating",
)

TEXT_FEATURES = 2**17  # per text block (prompt, response): 2**18 text columns in all
HASHED_FEATURES = 2**10  # segment one-hots, scores by name, custom signals
TOPIC_FEATURES = 2**12
# Long texts are cut: the head of a prompt or response says what it is about, and cost stays flat.
MAX_TEXT_CHARS = 4000

# Built-in signal aggregates (Interaction.signals keys) that get their own dense column.
SIGNAL_COUNTS: tuple[str, ...] = (
    "thumbs_up",
    "thumbs_down",
    "copy",
    "regenerate",
    "edit",
    "abandon",
    "follow_up",
    "share",
)
SIGNAL_VALUES: tuple[str, ...] = ("edit_ratio", "dwell_ms")
_KNOWN_SIGNALS = frozenset((*SIGNAL_COUNTS, *SIGNAL_VALUES, "outcome", "score"))
DENSE_COLUMNS: tuple[str, ...] = (
    *(f"n_{name}" for name in SIGNAL_COUNTS),
    "edit_ratio",
    "log_dwell_s",
    "explicit_rating",
    "has_explicit",
    "log_response_chars",
    "log_prompt_chars",
    "n_turns",
    "n_user_turns",
)
N_DENSE = len(DENSE_COLUMNS)
N_FEATURES = 2 * TEXT_FEATURES + N_DENSE + HASHED_FEATURES

# The documented cold-start prior (docs/sampling.md): a logit built from the signals, used for f
# before the project has labels of both classes. Base rate 0.73 (most production answers are fine);
# explicit thumbs dominate; regenerations, abandons, follow-up corrections and heavy edits push
# down; copies and shares push up. Counts are capped at 3 so one noisy user cannot saturate it.
PRIOR_BASE_LOGIT = 1.0
PRIOR_WEIGHTS: dict[str, float] = {
    "thumbs_up": 2.0,
    "thumbs_down": -2.5,
    "regenerate": -1.0,
    "abandon": -1.0,
    "follow_up": -0.6,
    "copy": 0.7,
    "share": 0.5,
    "edit_ratio": -1.5,
}

# The response (what is judged) gets unigrams and bigrams; the prompt turns, usually longer and
# mostly telling the topic, get unigrams: bigrams on both cost 40% of the scoring throughput.
_response_vectorizer = HashingVectorizer(
    n_features=TEXT_FEATURES,
    alternate_sign=False,
    ngram_range=(1, 2),
    norm="l2",
    dtype=np.float32,
)
_prompt_vectorizer = HashingVectorizer(
    n_features=TEXT_FEATURES,
    alternate_sign=False,
    ngram_range=(1, 1),
    norm="l2",
    dtype=np.float32,
)
_hasher = FeatureHasher(n_features=HASHED_FEATURES, input_type="dict", alternate_sign=False)


@dataclass(frozen=True)
class Features:
    """The feature blocks of a batch of interactions (row i of each block is interaction i)."""

    matrix: sp.csr_matrix  # all blocks side by side: text | dense | hashed
    judge: np.ndarray  # the primary judge's raw value, NaN where missing
    prior_logit: np.ndarray  # the cold-start prior, as a logit
    topic: sp.csr_matrix  # l2-normalised folded prompt text, for topic clustering


def prompt_text(messages: Any) -> str:
    """The prompt turns as one text (role-tagged so "user: refund" and a system rule differ)."""
    if not isinstance(messages, list):
        return ""
    parts = []
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str) and content:
                parts.append(content)
    return "\n".join(parts)[-MAX_TEXT_CHARS:]


def _number(value: Any) -> float:
    kind = type(value)
    if kind is int or kind is bool:
        return float(value)
    if kind is float:
        return value if math.isfinite(value) else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def signal_counts(signals: Any, explicit_rating: Any) -> dict[str, float]:
    """Normalised signal aggregates: counts of each built-in type, edit ratio, dwell (ms).

    An explicit rating without a matching thumbs count (older rows) still counts as one thumb.
    """
    signals = signals if isinstance(signals, dict) else {}
    if not signals:
        out = dict.fromkeys(SIGNAL_COUNTS, 0.0)
    else:
        out = {name: max(0.0, _number(signals.get(name))) for name in SIGNAL_COUNTS}
    out["edit_ratio"] = min(1.0, max(0.0, _number(signals.get("edit_ratio"))))
    out["dwell_ms"] = max(0.0, _number(signals.get("dwell_ms")))
    if explicit_rating == 1 and out["thumbs_up"] == 0:
        out["thumbs_up"] = 1.0
    if explicit_rating == -1 and out["thumbs_down"] == 0:
        out["thumbs_down"] = 1.0
    return out


def prior_logit(signals: Any, explicit_rating: Any, judge: float | None = None) -> float:
    """The cold-start prior logit of P(good) from signals (see PRIOR_WEIGHTS).

    A primary judge already on a probability scale ([0, 1]) replaces the base rate; judges on other
    scales cannot be mapped without labels and are ignored until the first trained model.
    """
    return _prior_from_counts(signal_counts(signals, explicit_rating), judge)


def _prior_from_counts(counts: dict[str, float], judge: float | None) -> float:
    base = PRIOR_BASE_LOGIT
    if judge is not None and math.isfinite(judge) and 0.0 <= judge <= 1.0:
        p = min(0.98, max(0.02, judge))
        base = math.log(p / (1.0 - p))
    logit = base
    for name, weight in PRIOR_WEIGHTS.items():
        value = counts[name] if name == "edit_ratio" else min(3.0, counts[name])
        logit += weight * value
    return logit


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def prior_probability(signals: Any, explicit_rating: Any, judge: float | None = None) -> float:
    return float(sigmoid(np.array(prior_logit(signals, explicit_rating, judge))))


def _dense_row(messages: Any, response: str, counts: dict[str, float], rating: Any) -> list[float]:
    turns = messages if isinstance(messages, list) else []
    n_user = sum(1 for m in turns if isinstance(m, dict) and m.get("role") == "user")
    prompt_chars = sum(
        len(m.get("content") or "")
        for m in turns
        if isinstance(m, dict) and isinstance(m.get("content"), str)
    )
    return [
        *(math.log1p(counts[name]) for name in SIGNAL_COUNTS),
        counts["edit_ratio"],
        math.log1p(counts["dwell_ms"] / 1000.0),
        float(rating) if rating in (1, -1) else 0.0,
        1.0 if rating in (1, -1) else 0.0,
        # Scaled to about [0, 1] here, so the classifier needs no fitted scaler.
        math.log1p(len(response)) / 10.0,
        math.log1p(prompt_chars) / 10.0,
        math.log1p(len(turns)) / 3.0,
        math.log1p(n_user) / 3.0,
    ]


def _hashed_items(segment: Any, scores: Any, signals: Any) -> dict[str, float]:
    items: dict[str, float] = {}
    if isinstance(segment, dict):
        for key, value in segment.items():
            items[f"seg:{key}={value}"] = 1.0
    if isinstance(scores, dict):
        for name, value in scores.items():
            number = _number(value)
            # signed log: a score on any scale (0-1, 1-10, a reward of -40) stays moderate
            items[f"score:{name}"] = math.copysign(math.log1p(abs(number)), number)
            items[f"has_score:{name}"] = 1.0
    if isinstance(signals, dict):
        for name, value in signals.items():
            if name not in _KNOWN_SIGNALS:
                items[f"sig:{name}"] = math.copysign(
                    math.log1p(abs(_number(value))), _number(value)
                )
    return items


def fold_topic(prompt_block: sp.csr_matrix) -> sp.csr_matrix:
    """Fold the hashed prompt block to TOPIC_FEATURES columns (index mod), l2-normalised."""
    folded = sp.csr_matrix(
        (prompt_block.data, prompt_block.indices % TOPIC_FEATURES, prompt_block.indptr),
        shape=(prompt_block.shape[0], TOPIC_FEATURES),
    )
    folded.sum_duplicates()
    return normalize(folded, norm="l2", copy=False)


def featurize(rows: Sequence[Sequence[Any]], *, judge: str | None = None) -> Features:
    """Featurize ``rows`` (tuples in FEATURE_FIELDS order). Pure: same rows, same matrix.

    ``judge`` names the project's primary judge score: its raw values are returned separately
    (the proxy calibrates them) and the prior uses it when it is already a probability.
    """
    n = len(rows)
    if n == 0:
        empty = sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
        return Features(
            matrix=empty,
            judge=np.zeros(0),
            prior_logit=np.zeros(0),
            topic=sp.csr_matrix((0, TOPIC_FEATURES), dtype=np.float32),
        )
    prompts: list[str] = []
    responses: list[str] = []
    dense = np.zeros((n, N_DENSE), dtype=np.float32)
    hashed_items: list[dict[str, float]] = []
    judge_values = np.full(n, np.nan)
    priors = np.zeros(n)
    for i, (messages, response, segment, scores, signals, rating) in enumerate(rows):
        response = response if isinstance(response, str) else ""
        prompts.append(prompt_text(messages))
        responses.append(response[:MAX_TEXT_CHARS])
        counts = signal_counts(signals, rating)
        dense[i] = _dense_row(messages, response, counts, rating)
        hashed_items.append(_hashed_items(segment, scores, signals))
        judge_value: float | None = None
        if judge and isinstance(scores, dict) and judge in scores:
            raw = scores[judge]
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                judge_value = float(raw)
                judge_values[i] = judge_value
        priors[i] = _prior_from_counts(counts, judge_value)
    prompt_block = _prompt_vectorizer.transform(prompts)
    response_block = _response_vectorizer.transform(responses)
    hashed = _hasher.transform(hashed_items).astype(np.float32)
    matrix = sp.hstack(
        [prompt_block, response_block, sp.csr_matrix(dense), hashed], format="csr", dtype=np.float32
    )
    return Features(
        matrix=matrix, judge=judge_values, prior_logit=priors, topic=fold_topic(prompt_block)
    )
