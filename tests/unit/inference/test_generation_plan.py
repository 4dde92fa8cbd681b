"""Whether and how an inference process generates, from its settings: on by default, off with
HARTONOMOUS_GENERATION_SLOTS=0, a clear error for a value that cannot be right."""

from __future__ import annotations

import pytest

from hartonomous.settings import Settings
from services.inference.service import GenerationPlan


def plan(**env: str) -> GenerationPlan | None:
    return GenerationPlan.from_settings(Settings.from_env(env))


def test_generation_is_on_by_default_and_off_with_zero_slots() -> None:
    assert plan() == GenerationPlan(slots=8, context=1024)
    assert plan(HARTONOMOUS_GENERATION_SLOTS="0") is None
    assert plan(HARTONOMOUS_GENERATION_SLOTS="2", HARTONOMOUS_GENERATION_CONTEXT="256") == (
        GenerationPlan(slots=2, context=256)
    )


def test_values_that_cannot_be_right_name_their_variable() -> None:
    with pytest.raises(ValueError, match="HARTONOMOUS_GENERATION_SLOTS must be an integer"):
        plan(HARTONOMOUS_GENERATION_SLOTS="eight")
    with pytest.raises(ValueError, match="HARTONOMOUS_GENERATION_CONTEXT at least 32"):
        plan(HARTONOMOUS_GENERATION_CONTEXT="8")
