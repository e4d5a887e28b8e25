"""Unit tests of the featurizer: stateless, shaped and signalled as documented."""

from __future__ import annotations

import numpy as np
import pytest

from sampling import features as feat


def _row(
    prompt: str = "How do I reset my password?",
    response: str = "Open Settings, then Security.",
    segment: dict | None = None,
    scores: dict | None = None,
    signals: dict | None = None,
    rating: int | None = None,
) -> tuple:
    return (
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        response,
        segment if segment is not None else {"tier": "free"},
        scores or {},
        signals or {},
        rating,
    )


def test_shape_and_determinism() -> None:
    rows = [_row(), _row(prompt="refund please", signals={"copy": 2})]
    a = feat.featurize(rows)
    b = feat.featurize(list(reversed(rows)))
    assert a.matrix.shape == (2, feat.N_FEATURES)
    assert (a.matrix[0] != b.matrix[1]).nnz == 0  # same row, same features: nothing is fitted
    assert a.topic.shape == (2, feat.TOPIC_FEATURES)
    np.testing.assert_allclose(np.asarray(a.topic.multiply(a.topic).sum(axis=1)).ravel(), 1.0)


def test_prompt_and_response_use_separate_blocks() -> None:
    only_prompt = feat.featurize([_row(prompt="zebra", response="")]).matrix
    only_response = feat.featurize([_row(prompt="", response="zebra")]).matrix
    prompt_cols = set(only_prompt.indices[only_prompt.indices < feat.TEXT_FEATURES])
    response_cols = set(
        only_response.indices[
            (only_response.indices >= feat.TEXT_FEATURES)
            & (only_response.indices < 2 * feat.TEXT_FEATURES)
        ]
    )
    assert prompt_cols
    assert {c + feat.TEXT_FEATURES for c in prompt_cols if c} & response_cols


def test_dense_signal_and_shape_columns() -> None:
    signals = {"copy": 2, "regenerate": 1, "edit_ratio": 0.4, "dwell_ms": 3000, "ticket": 1}
    f = feat.featurize([_row(signals=signals, rating=-1, response="abcd")])
    dense = f.matrix[0, 2 * feat.TEXT_FEATURES : 2 * feat.TEXT_FEATURES + feat.N_DENSE].toarray()[0]
    col = {name: dense[i] for i, name in enumerate(feat.DENSE_COLUMNS)}
    assert col["n_copy"] == pytest.approx(np.log1p(2))
    assert col["n_regenerate"] == pytest.approx(np.log1p(1))
    assert col["n_thumbs_down"] == pytest.approx(np.log1p(1))  # from the explicit rating
    assert col["edit_ratio"] == pytest.approx(0.4)
    assert col["log_dwell_s"] == pytest.approx(np.log1p(3.0))
    assert col["explicit_rating"] == -1
    assert col["log_response_chars"] == pytest.approx(np.log1p(4) / 10)
    assert col["n_turns"] == pytest.approx(np.log1p(2) / 3)
    assert col["n_user_turns"] == pytest.approx(np.log1p(1) / 3)


def test_segments_and_scores_are_hashed_and_judge_is_kept_raw() -> None:
    a = feat.featurize([_row(segment={"tier": "free"}, scores={"judge": 7.0})], judge="judge")
    b = feat.featurize([_row(segment={"tier": "pro"}, scores={"judge": 7.0})], judge="judge")
    hashed = slice(2 * feat.TEXT_FEATURES + feat.N_DENSE, feat.N_FEATURES)
    assert (a.matrix[:, hashed] != b.matrix[:, hashed]).nnz > 0
    assert a.judge[0] == 7.0
    missing = feat.featurize([_row(scores={})], judge="judge")
    assert np.isnan(missing.judge[0])


def test_prior_pushes_down_on_bad_signals_and_up_on_good_ones() -> None:
    neutral = feat.prior_probability({}, None)
    assert neutral == pytest.approx(1 / (1 + np.exp(-feat.PRIOR_BASE_LOGIT)))
    for bad in ({"thumbs_down": 1}, {"regenerate": 1}, {"abandon": 1}, {"edit_ratio": 0.9}):
        assert feat.prior_probability(bad, None) < neutral, bad
    for good in ({"thumbs_up": 1}, {"copy": 1}, {"share": 1}):
        assert feat.prior_probability(good, None) > neutral, good
    assert feat.prior_probability({}, -1) < neutral  # explicit rating without a count
    # a judge already on [0, 1] sets the base rate; other scales are ignored
    assert feat.prior_probability({}, None, judge=0.1) == pytest.approx(0.1)
    assert feat.prior_probability({}, None, judge=7.0) == pytest.approx(neutral)


def test_bad_input_does_not_crash() -> None:
    rows = [(None, None, None, None, None, None), ("text", 5, [], {"x": "y"}, {"copy": "a"}, 3)]
    f = feat.featurize(rows)
    assert f.matrix.shape[0] == 2
    assert np.isfinite(f.prior_logit).all()


def test_no_rows_gives_empty_blocks() -> None:
    f = feat.featurize([])
    assert f.matrix.shape == (0, feat.N_FEATURES)
    assert f.topic.shape == (0, feat.TOPIC_FEATURES)
