"""Flywheel's settings: declared once, read at call time, all documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flywheel_site import app_settings
from flywheel_site.app_settings import DECLARED, from_environ, setting

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_every_declared_setting_is_documented_with_its_default() -> None:
    text = DOCS.read_text()
    for spec in DECLARED:
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |")), ""
        )
        assert row, f"docs/settings.md has no row for {spec.name}"
        assert f"| {spec.default}" in row, f"docs/settings.md shows another default for {spec.name}"


def test_environment_sets_a_value_and_a_bad_one_names_the_variable() -> None:
    values = from_environ({"FLYWHEEL_EXPORT_STALE_SECONDS": "42"})
    assert values["EXPORT_STALE_SECONDS"] == 42
    assert values["SCORE_CHUNK_SIZE"] == 5000
    with pytest.raises(ValueError, match="FLYWHEEL_SCORE_CHUNK_SIZE"):
        from_environ({"FLYWHEEL_SCORE_CHUNK_SIZE": "lots"})


def test_read_at_call_time_with_the_declared_default(settings: Any) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "RUN_STALE_AFTER_S": 5}
    assert setting("RUN_STALE_AFTER_S") == 5
    settings.FLYWHEEL = {k: v for k, v in settings.FLYWHEEL.items() if k != "RUN_STALE_AFTER_S"}
    assert setting("RUN_STALE_AFTER_S") == 600
    with pytest.raises(KeyError, match="not a declared"):
        setting("NO_SUCH_SETTING")


def test_run_staleness_follows_the_setting(settings: Any) -> None:
    from sampling.services.runs import run_stale_after

    settings.FLYWHEEL = {**settings.FLYWHEEL, "RUN_STALE_AFTER_S": 30}
    assert run_stale_after().total_seconds() == 30


def test_declared_names_are_unique() -> None:
    names = [spec.name for spec in DECLARED]
    assert len(names) == len(set(names)) == len(app_settings._BY_NAME)
